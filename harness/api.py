"""The notebook API: the same verbs as the CLI, returning Python objects.

    from harness import run, report, gate
    rundir = run("harness.yaml", models=["base", "sft"])
    scores = rundir.scores()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import HarnessConfig
from harness.config import load_config as _load_config
from harness.errors import HarnessError

DEMO_DIR = Path(__file__).resolve().parent / "demo"  # package data: config, data, tasks, adapters
DEMO_CONFIG = DEMO_DIR / "harness.yaml"


def load_config(config: str | Path | HarnessConfig | None = None) -> HarnessConfig:
    """A validated config: the given file, else ./harness.yaml, else the built-in demo."""
    if isinstance(config, HarnessConfig):
        return config
    if config is not None:
        return _load_config(config)
    if Path("harness.yaml").is_file():
        return _load_config("harness.yaml")
    if not DEMO_CONFIG.is_file():
        raise HarnessError("no harness.yaml here and the built-in demo is not installed",
                           fix="Write a harness.yaml with 'models:' and 'tasks:' (see README) and pass --config.")
    return _load_config(DEMO_CONFIG)


def _quick_config(config: str | Path | HarnessConfig | None, quick: dict[str, dict[str, Any]],
                  tasks: list[str] | None, benchmarks: list[str] | None) -> HarnessConfig:
    """The config of a run with ``--model NAME=SPEC`` flags: the given (or ./harness.yaml) config
    with these models added (same name: replaced); with no config file, only these models and
    what the flags name (never the demo's models)."""
    from harness.config import config_from_dict
    from harness.quick import quick_config_data

    if config is None and not Path("harness.yaml").is_file():
        return config_from_dict(quick_config_data(quick, tasks, benchmarks), where="--model flags",
                                base_dir=Path.cwd())
    cfg = load_config(config)
    return _override(cfg, models={**cfg.model_dump(mode="json")["models"], **quick})


def benchmark_entries(cfg: HarnessConfig, names: list[str]) -> list[dict[str, Any]]:
    """``--benchmarks a,b`` as config entries: a configured benchmark keeps its settings (limit,
    num_fewshot, batch size); another gets the defaults; ``none`` is dropped."""
    known = {b.name: b.model_dump(mode="json") for b in cfg.benchmarks}
    return [known.get(n, {"name": n}) for n in names if n != "none"]


def _override(cfg: HarnessConfig, **changes: Any) -> HarnessConfig:
    from harness.config import config_from_dict

    data = cfg.model_dump(mode="json", exclude={"base_dir"})  # (not snapshot(): that hides API keys)
    for key, value in changes.items():
        if value is not None:
            data[key] = value
    return config_from_dict(data, where="command-line flags", base_dir=cfg.base_dir)


def run(config: str | Path | HarnessConfig | None = None, *, models: list[str] | None = None,
        tasks: list[str] | None = None, benchmarks: list[str] | None = None, judge: str | None = None,
        limit: int | None = None, output_dir: str | Path | None = None, resume: str | Path | None = None,
        quiet: bool = False, write_report: bool = True, trust_remote_code: bool | None = None,
        gate: bool = False, workers: int | None = None, cluster: str | None = None,
        model_flags: list[str] | None = None, log: list[str] | str | None = None):
    """Evaluate models on tasks/benchmarks/judge; returns the ``RunDir``.

    ``model_flags`` are ``NAME=SPEC`` strings (``harness run --model``, harness/quick.py): these
    models are added to the config (with no config file: they are the config) and evaluated.
    ``limit`` caps every task and benchmark (a benchmark's own smaller limit stays).

    Every input is checked before the run directory is made; a failure while running keeps the
    finished units for ``resume=``. ``trust_remote_code=True`` (or HARNESS_TRUST_REMOTE_CODE=1)
    is the consent a model with ``trust_remote_code: true`` needs. ``gate=True`` (``run --gate``)
    also checks, before anything runs, that every baseline a max_drop gate needs exists.
    ``workers`` / ``cluster`` (an address: local, auto, ray://host:port) run it data-parallel on
    Ray (the config's ``cluster:`` with these changed; docs/cluster.md). ``log``: trackers to log
    the finished run to (mlflow, mlflow:URI, wandb; default: the config's ``tracking.log``).
    Progress shows as rich bars in a terminal or notebook and as plain ``[harness] ...`` lines
    elsewhere; ``quiet=True`` turns it off."""
    from harness import runner as runmod
    from harness.progress import Progress, libraries_quiet
    from harness.records import Coverage
    from harness.stages import score
    from harness.stages.plan import check_gates, check_judge, make_plan, remote_code_consent, switched_off

    if resume:
        runmod.check_resume(resume)
    if model_flags:
        from harness.quick import parse_model_flags

        quick = parse_model_flags(list(model_flags))
        configured = cfg = _quick_config(config, quick, tasks, benchmarks)
        models = models or list(quick)
    else:
        configured = cfg = load_config(config)
    trackers = _trackers(cfg, log)  # a missing mlflow/wandb fails here, before any model loads
    bench = None if benchmarks is None else benchmark_entries(cfg, benchmarks)
    judge_cfg = None
    if judge is not None:
        judge_cfg = {**cfg.judge.model_dump(), "backend": judge, "fallback": None}
    cluster_cfg = None
    if workers is not None or cluster is not None:
        cluster_cfg = {**(cfg.cluster.model_dump() if cfg.cluster else {}), "engine": "ray",
                       **({"workers": workers} if workers is not None else {}),
                       **({"address": cluster} if cluster is not None else {})}
    cfg = _override(cfg, tasks=tasks, benchmarks=bench, judge=judge_cfg, limit=limit, cluster=cluster_cfg)
    plan = make_plan(cfg, models, trust_remote_code=remote_code_consent(trust_remote_code))
    check_judge(plan)  # a judge server that is down fails here, before any model loads
    plan.switched_off = switched_off(configured, plan)
    check_gates(plan, with_baselines=gate, output_root=Path(output_dir) if output_dir else cfg.output_root())
    rundir = runmod.start_rundir(cfg, plan, str(output_dir) if output_dir else None,
                                 str(resume) if resume else None)
    with Progress(quiet=quiet) as progress, libraries_quiet():
        try:
            progress.log(f"run directory: {rundir.path}")
            for note in plan.notes:
                progress.log(f"note: {note}")
            if plan.trusted:
                progress.log("trust_remote_code: running the model folder's own code for "
                             + ", ".join(plan.trusted))
            runmod.execute(plan, rundir, progress)
            if resume:
                progress.log(f"resume: {rundir.units_reused} finished units reused, "
                             f"{rundir.units_computed} computed")
        except BaseException as err:
            raise runmod.after_failure(rundir, not resume, err) from None
        with progress.bar("score (intervals, paired tests)", 1):
            score.execute(rundir, seed=cfg.seed, n_resamples=cfg.bootstrap_resamples,
                          coverage=Coverage(**cfg.coverage.model_dump()))
    if write_report:
        report(rundir.path)
    if trackers:
        from harness.tracking import log_run

        rundir.tracked = log_run(rundir.path, trackers, project=cfg.tracking.project if cfg.tracking else None)
    return rundir


def _trackers(cfg: HarnessConfig, log: list[str] | str | None):
    from harness.tracking.targets import check_targets, parse_targets

    targets = parse_targets(log) if log is not None else parse_targets(
        cfg.tracking.log if cfg.tracking else None, where="tracking.log")
    check_targets(targets)
    return targets


def report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write report.md and report.html for a stored run."""
    from harness.report import write_reports

    return write_reports(run_dir)


def compare(run_a: str | Path, run_b: str | Path, output_dir: str | Path | None = None) -> tuple[Path, Path]:
    from harness.report.compare import write_comparison

    out = Path(output_dir) if output_dir else Path(run_b) / f"compare-{Path(run_a).name}"
    return write_comparison(run_a, run_b, out)


def gate(run_dir: str | Path, config: str | Path | None = None, baseline: str | Path | None = None):
    """Evaluate gate rules on a stored run; returns the gate report (``.passed``, ``.rows``)."""
    from harness.gate import check_gates

    return check_gates(run_dir, config, baseline)


def keep_workers():
    """A ``with`` block in which data-parallel runs (``run(..., workers=N)``) hand their Ray workers
    to the next run instead of stopping them: no worker start, no imports again, and the models
    stay loaded when the next run has the same ones. The workers stop when the block ends
    (docs/cluster.md, "Several runs in one session")::

        with harness.keep_workers():
            for config in ("a.yaml", "b.yaml"):
                harness.run(config, workers=2)
    """
    from harness.cluster.ray_workers import keep_workers as keep

    return keep()


def arena(run_dir: str | Path, *, port: int = 7860, models: list[str] | None = None, host: str = "127.0.0.1",
          voter: str | None = None, seed: int | None = None, quiet: bool = True):
    """Serve the blind arena on a run's stored answers (gradio, offline, no share link) and return
    the running app without blocking: ``.local_url``, ``.block_thread()``, ``.close()``. Votes are
    appended to ``<run>/arena/votes.jsonl``; ``harness report`` ranks them."""
    from harness.arena.app import ArenaSession, serve
    from harness.arena.pool import ArenaPool
    from harness.store import RunDir

    if not 0 < port < 65536:
        raise HarnessError(f"--port {port} is not a TCP port", fix="pass a number from 1 to 65535, e.g. 7860")
    pool = ArenaPool.from_run(run_dir, models)
    session = ArenaSession(pool, RunDir(run_dir).arena_votes_path(), voter=voter or "", seed=seed)
    return serve(session, host=host, port=port, quiet=quiet)


def resolve_models(config: str | Path | HarnessConfig | None = None) -> dict[str, Any]:
    """How each configured checkpoint resolves (no weights are loaded)."""
    from harness.models.resolve import resolve_models as _resolve

    cfg = load_config(config)
    specs = {n: s for n, s in cfg.models.items() if not s.responses}
    out: dict[str, Any] = {n: r.describe() for n, r in _resolve(specs, Path(cfg.base_dir)).items()}
    for n, s in cfg.models.items():
        if s.responses:
            out[n] = {"kind": "responses", "chain": [f"{n} (responses: {s.responses}, field {s.field})"]}
    return {n: out[n] for n in cfg.models}


def print_models(config: str | Path | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "kind", "backend", "resolves to", "dtype", "prompt format")
    for name, d in resolve_models(config).items():
        table.add_row(name, d.get("kind", ""), str(d.get("backend") or "-"), "\n  -> ".join(d.get("chain", [])),
                      str(d.get("dtype", "-")), str(d.get("template") or "-"))
    Console().print(table)


def print_tasks(config: str | Path | None = None) -> None:
    """Tasks and benchmarks: the task files in tasks/ folders (the config's, the current
    folder's, the built-in ones) and the configured tasks; the offline minis and the configured
    benchmarks. Other YAML files (configs, gate files) are not tasks and are not listed."""
    from rich.console import Console
    from rich.table import Table

    from harness.benchmarks.minis import MINI_NAMES
    from harness.tasks import known_tasks, load_tasks

    cfg = load_config(config)
    extra = [Path(cfg.base_dir) / "tasks", Path(cfg.base_dir)]
    configured = {t.name for t in load_tasks(cfg.tasks, extra)} if cfg.tasks else set()
    table = Table("name", "kind", "configured", "language", "metrics", "data")
    refs = list(dict.fromkeys([*known_tasks([Path(cfg.base_dir) / "tasks"]), *cfg.tasks]))
    for ref in refs:
        try:
            specs = load_tasks([ref], extra)
        except HarnessError as err:
            table.add_row(ref, "[red]broken[/]", "", "", f"[red]{err}[/]", "")
            continue
        if _is_suite(ref, extra):
            table.add_row(ref, "suite", "yes" if ref in cfg.tasks else "", "", " + ".join(t.name for t in specs), "")
            continue
        for t in specs:
            table.add_row(t.name, "preference" if t.is_preference else "task", "yes" if t.name in configured else "",
                          t.language, ", ".join(t.metrics), t.data)
    benches = {b.name: b for b in cfg.benchmarks}
    for name in dict.fromkeys([*MINI_NAMES, *benches]):
        b = benches.get(name)
        limit = f"limit {b.limit}" if b is not None and b.limit else ""
        table.add_row(name, "benchmark", "yes" if b is not None else "", "", "acc, acc_norm",
                      "offline mini" + (f", {limit}" if limit else "") if name in MINI_NAMES else limit or "lm-eval")
    Console().print(table)


def _is_suite(ref: str, extra: list[Path]) -> bool:
    from harness.io import read_yaml
    from harness.tasks import find_task_file

    data = read_yaml(find_task_file(ref, extra))
    return isinstance(data, dict) and "suite" in data


def train_sft(**kwargs: Any):
    """Train an SFT adapter (see ``harness train sft --help`` for the options)."""
    from harness.train.sft import train_sft as _train

    return _train(**kwargs)


def train_dpo(**kwargs: Any):
    """Train a DPO adapter, optionally on top of an SFT adapter."""
    from harness.train.dpo import train_dpo as _train

    return _train(**kwargs)


def retrain_demo(quiet: bool = False) -> None:
    """Regenerate the demo data and retrain both demo adapters, in place: ``harness/demo/`` of a
    source checkout, or the installed package's copy (a reinstall brings the shipped ones back)."""
    import os

    from harness.train.demo import retrain_demo as _retrain

    if not os.access(DEMO_DIR, os.W_OK):
        raise HarnessError(f"cannot retrain the demo: {DEMO_DIR} is not writable",
                           fix="Retrain from a source checkout, or train your own adapters with "
                               "`harness train sft` / `harness train dpo` into a folder you own.")
    _retrain(DEMO_DIR, quiet=quiet)
