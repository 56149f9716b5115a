"""Planner + executor: models x tasks (+ benchmarks, judge) -> a run directory.

Every work unit (one model on one task, one model on one benchmark, one judge pass) has a
key that hashes everything its result depends on. A finished unit is written to the run
directory at once and marked done, so ``harness run --resume RUN`` skips it and an
interrupted or failed run loses nothing already computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig, ModelSpec
from harness.errors import HarnessError
from harness.records import Sample
from harness.store import unit_key
from harness.tasks import TaskSpec, load_samples, load_tasks, read_rows_located


@dataclass
class Plan:
    """What a run will do, decided before any model is loaded."""

    config: HarnessConfig
    models: list[str]
    tasks: list[TaskSpec]
    resolved: dict[str, Any]  # name -> ResolvedModel (responses models excluded)
    items: dict[str, list[Sample]] = field(default_factory=dict)  # task -> its items (data read and checked)
    judge_backend: Any = None  # a judging backend, already checked reachable
    judge_label: str = "none"
    _pool: Any = None

    def pool(self):
        """The ModelPool, created on first use (responses-only runs never load a model)."""
        if self._pool is None:
            from harness.models.load import ModelPool

            self._pool = ModelPool(dict(self.resolved))
        return self._pool

    def close(self) -> None:
        self._pool = None  # the loaded weights are freed with the pool


class Progress:
    """A thin wrapper over rich progress bars (silent when quiet)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._progress = None

    def __enter__(self):
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                          TimeElapsedColumn(), transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def log(self, msg: str) -> None:
        if self._progress is not None:
            self._progress.console.print(msg)

    @contextmanager
    def bar(self, description: str, total: int):
        if self._progress is None:
            yield lambda done, total_=None: None
            return
        tid = self._progress.add_task(description, total=total)

        def update(done: int, total_: int | None = None) -> None:
            self._progress.update(tid, completed=done, total=total_ or total)

        try:
            yield update
        finally:
            self._progress.update(tid, completed=self._progress.tasks[tid].total)


# ---------------------------------------------------------------- planning


def make_plan(cfg: HarnessConfig, models: list[str] | None = None) -> Plan:
    from harness.models.load import resolve_models

    names = models or list(cfg.models)
    unknown = [m for m in names if m not in cfg.models]
    if unknown:
        raise HarnessError(f"--models: unknown model '{unknown[0]}'", fix=f"Configured models: {', '.join(cfg.models)}.")
    # an adapter's base model must be loadable even when not evaluated itself
    tasks = load_tasks(cfg.tasks, extra=[Path(cfg.base_dir) / "tasks", Path(cfg.base_dir)])
    model_specs = {n: s for n, s in cfg.models.items() if not s.responses}
    resolved = resolve_models(model_specs, Path(cfg.base_dir)) if model_specs else {}
    for name in names:
        spec = cfg.models[name]
        if spec.responses and not cfg.resolve_path(spec.responses).is_file():
            raise HarnessError(f"models.{name}.responses: file not found: {spec.responses}")
    # read every data file now: a bad line fails before a run directory exists or a model loads
    items = {t.name: load_samples(t, cfg.limit) for t in tasks}
    for task in tasks:
        if "json" in task.metrics:
            _check_json_references(task, items[task.name])
    return Plan(config=cfg, models=names, tasks=tasks, resolved=resolved, items=items)


def _check_json_references(task: TaskSpec, items: list[Sample]) -> None:
    """The json metric compares answers with JSON references: catch text references now."""
    from harness.metrics.structured import extract_json

    for s in items:
        if extract_json(s.reference) is None:
            raise HarnessError(f"task {task.name}: item {s.id} has a reference that is not JSON "
                               f"({s.reference[:40]!r}) but the task asks for the json metric",
                               fix=f"Remove 'json' from metrics in {task.source or 'the task file'}, "
                                   "or write the references as JSON objects.")


def check_judge(plan: Plan) -> None:
    """Connect to the judge before any model is loaded (a down server fails fast).

    With ``judge.fallback`` set (the demo), an unreachable first backend falls back to it.
    """
    jc = plan.config.judge
    if jc.backend == "none" or not plan.tasks:
        return
    from harness.judging.backends import make_backend
    from harness.judging.run import backend_options, hf_callables

    def build(spec: str):
        options = backend_options(plan.config)
        if spec.startswith("hf:"):
            options.update(hf_callables(spec[3:], plan, plan.pool))
        backend = make_backend(spec, options)
        if backend is not None:
            backend.check()
        return backend

    try:
        plan.judge_backend, plan.judge_label = build(jc.backend), jc.backend
    except HarnessError:
        if not jc.fallback:
            raise
        plan.judge_backend, plan.judge_label = build(jc.fallback), jc.fallback


# ---------------------------------------------------------------- execution


def _responses_samples(cfg: HarnessConfig, name: str, spec: ModelSpec, task: TaskSpec,
                       items: list[Sample]) -> list[Sample]:
    """Answers another system generated, matched to the task's items by instruction+input."""
    path = cfg.resolve_path(spec.responses)
    f = task.fields
    by_key = {}
    for where, row in read_rows_located(path):
        if spec.field not in row:
            raise HarnessError(f"{where}: missing field '{spec.field}'",
                               fix=f"Set models.{name}.field to the field that holds the answer.")
        key = (str(row.get(f.instruction, "")), str(row.get(f.input, "") or "") if f.input else "")
        by_key[key] = row
    out = []
    for s in items:
        row = by_key.get((s.instruction, s.input))
        if row is None:
            raise HarnessError(f"{path}: no answer for task {task.name} item {s.id} ({s.instruction[:40]!r})",
                               fix="The responses file must contain every instruction of the task.")
        resp = row[spec.field]
        out.append(Sample(**{**s.to_dict(), "model": name, "response": "" if resp is None else str(resp),
                             "prompt": "", "meta": {**s.meta, "source": "responses"}}))
    return out


def _generate_samples(engine, fmt, system: str | None, items: list[Sample], name: str, task: TaskSpec,
                      cfg: HarnessConfig, update: Callable) -> list[Sample]:
    gen = cfg.generation
    # system prompt: the item's own (a 'messages' task), else the task's, else the model's
    default_system = task.system_prompt or system
    prompts = [fmt.render_messages(s.meta["messages"], system=default_system) if s.meta.get("messages")
               else fmt.render(s.instruction, s.input, system=default_system) for s in items]
    outs = engine.generate(
        prompts,
        fmt=fmt,
        max_new_tokens=task.generation.max_new_tokens or gen.max_new_tokens,
        temperature=task.generation.temperature if task.generation.temperature is not None else gen.temperature,
        top_p=gen.top_p,
        stop=list(gen.stop) + list(task.generation.stop),
        seed=cfg.seed,
        progress=update,
    )
    samples = []
    for s, prompt, g in zip(items, prompts, outs):
        samples.append(Sample(**{**s.to_dict(), "model": name, "prompt": prompt, "response": g.text,
                                 "n_tokens": g.n_tokens, "truncated": g.truncated,
                                 "meta": {**s.meta, "raw": g.raw} if g.raw != g.text else dict(s.meta)}))
    if "perplexity" in task.metrics:
        nlls = engine.token_nll(prompts, [s.reference for s in items])
        for s, nll in zip(samples, nlls):
            s.metrics["nll"] = nll.nll_sum
            s.metrics["nll_tokens"] = nll.n_tokens
            s.metrics["nll_bytes"] = nll.n_bytes
    return samples


def _score_per_sample(samples: list[Sample], task: TaskSpec) -> None:
    from harness.metrics import score_samples

    names = [m for m in task.metrics if m != "perplexity"]
    if not names:
        return
    per_sample, _ = score_samples(names, [s.response for s in samples], [s.reference for s in samples],
                                  [s.lang for s in samples], task.metric_options,
                                  n_tokens=[s.n_tokens if s.prompt else None for s in samples])
    for metric, values in per_sample.items():
        for s, v in zip(samples, values):
            s.metrics[metric] = v


def execute(plan: Plan, rundir, progress: Progress) -> None:
    """Run every unit not already done in ``rundir``."""
    cfg = plan.config
    limit = cfg.limit
    items_by_task = plan.items
    model_info: dict[str, Any] = rundir.run_info().get("models", {}) if rundir.exists("run.json") else {}
    try:
        for name in plan.models:
            spec = cfg.models[name]
            if spec.responses:
                model_info[name] = {"kind": "responses", "chain": [f"{name} (responses: {spec.responses})"],
                                    "template": None, "template_hash": None}
            for task in plan.tasks:
                key = unit_key("generate", name, _describe(plan, name), task.content_hash(), cfg.generation,
                               limit, cfg.seed, task.metrics, task.metric_options)
                if rundir.unit_done(key):
                    continue
                t0 = time.perf_counter()
                items = items_by_task[task.name]
                if spec.responses:
                    samples = _responses_samples(cfg, name, spec, task, items)
                else:
                    pool = plan.pool()
                    engine = pool.engine(name)
                    fmt = pool.format(name, task.prompt_format, Path(task.source).parent if task.source else None)
                    model_info[name] = {**pool.describe(name), "template": fmt.name,
                                        "template_hash": fmt.template_hash,
                                        "train_manifest": _train_manifest(plan, name)}
                    with progress.bar(f"{name} · {task.name}", len(items)) as update:
                        samples = _generate_samples(engine, fmt, pool.system_prompt(name), items, name, task,
                                                    cfg, update)
                _score_per_sample(samples, task)
                rundir.write_jsonl(f"samples/{name}/{task.name}.jsonl", [s.to_dict() for s in samples])
                rundir.mark_unit_done(key, {"unit": f"generate {name} {task.name}",
                                            "seconds": round(time.perf_counter() - t0, 3)})
                _save_models(rundir, model_info)
            if cfg.benchmarks and not spec.responses:
                _run_benchmarks(plan, plan.pool(), name, rundir, progress)
                model_info.setdefault(name, plan.pool().describe(name))
        _save_models(rundir, model_info)
        if plan.judge_backend is not None:
            from harness.judging.run import judge_run

            judge_run(plan, rundir, progress, pool_factory=plan.pool)
    finally:
        plan.close()


def _describe(plan: Plan, name: str) -> Any:
    """The model part of a unit key: how it resolves, decided before loading. Not
    ``describe()``, which gains dtype/device/params/template_hash once the weights are loaded,
    so a resumed run (nothing loaded yet) would compute other keys and redo finished units."""
    r = plan.resolved.get(name)
    if r is None:
        return plan.config.models[name].model_dump(mode="json")
    return {"kind": r.kind, "chain": list(r.chain), "root": r.root, "adapters": list(r.adapters),
            "gguf_file": r.gguf_file, "quantization": r.quantization, "dtype": r.dtype, "device": r.device,
            "prompt_format": r.prompt_format, "system_prompt": r.system_prompt, "tokenizer": r.tokenizer,
            "revision": r.revision}


def _train_manifest(plan: Plan, name: str) -> dict[str, Any] | None:
    """harness-train.json of the model's own adapter (reports draw its loss curves)."""
    from harness.train.manifest import read_manifest

    r = plan.resolved.get(name)
    return read_manifest(r.adapters[-1]) if r is not None and r.adapters else None


def _save_models(rundir, model_info: dict[str, Any]) -> None:
    info = rundir.run_info()
    info["models"] = {**info.get("models", {}), **model_info}
    rundir.write_json("run.json", info)


def _run_benchmarks(plan: Plan, pool, name: str, rundir, progress: Progress) -> None:
    """lm-eval benchmarks on the loaded model with ``name``'s adapters active. Benchmarks not
    yet done run in one lm-eval call (as ``lm_eval --tasks a,b`` would); each is its own unit."""
    from harness.benchmarks import run_benchmarks

    cfg = plan.config
    todo = []
    for bench in cfg.benchmarks:
        key = unit_key("benchmark", name, _describe(plan, name), bench.model_dump(mode="json"), cfg.seed)
        if not rundir.unit_done(key):
            todo.append((bench, key))
    if not todo:
        return
    t0 = time.perf_counter()
    model, tokenizer = pool.model_and_tokenizer(name)  # activates name's adapters for lm-eval
    progress.log(f"[bold]{name}[/] · benchmarks {', '.join(b.name for b, _ in todo)} (lm-evaluation-harness)")
    results = run_benchmarks(model, tokenizer, [b for b, _ in todo], model_name=name, seed=cfg.seed,
                             n_resamples=cfg.bootstrap_resamples)
    seconds = round(time.perf_counter() - t0, 3)
    for bench, key in todo:
        result = results[bench.name]
        rundir.write_jsonl(f"benchmarks/{name}/{bench.name}.jsonl", result.samples)
        rundir.write_json(f"benchmarks/{name}/{bench.name}.summary.json", result.to_dict())
        rundir.mark_unit_done(key, {"unit": f"benchmark {name} {bench.name}", "seconds": seconds / len(todo)})


# ---------------------------------------------------------------- the whole run


def start_rundir(cfg: HarnessConfig, plan: Plan, output_dir: str | None, resume: str | None):
    import yaml

    from harness.env import environment
    from harness.store import RunDir

    if resume:
        if not (Path(resume) / "run.json").is_file():
            raise HarnessError(f"--resume {resume}: not a run directory (no run.json)",
                               fix="Pass a folder that `harness run` created, e.g. reports/<run-id>.")
        rundir = RunDir(resume)
        old = rundir.run_info().get("config_hash")
        if old and old != cfg.hash():
            raise HarnessError(f"--resume {resume}: the run used config {old}, this config is {cfg.hash()}",
                               fix="Resume with the same config, or start a new run without --resume.")
        return rundir
    root = Path(output_dir) if output_dir else cfg.resolve_path(cfg.output_dir)
    rundir = RunDir.create(root, config_hash=cfg.hash())
    rundir.write_text("config.yaml", yaml.safe_dump(cfg.snapshot(), allow_unicode=True, sort_keys=False))
    rundir.write_json("run.json", {
        "run_id": rundir.path.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": cfg.hash(),
        "models_order": plan.models,
        "tasks": [t.name for t in plan.tasks],
        "benchmarks": [b.name for b in cfg.benchmarks],
        "env": environment(Path(cfg.base_dir)),
        "judge": {"backend": plan.judge_label, "small_local": plan.judge_label.startswith("hf:"),
                  "judges": list(cfg.judge.judges) if plan.judge_backend is not None else []},
        "models": {},
    })
    return rundir
