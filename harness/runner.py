"""The executor: sequences the stages of a run and owns the run directory's lifecycle.

plan (stages/plan.py) -> generate -> preference -> benchmark -> judge -> parity -> (models released)
-> metrics (stages/*.py) -> score (stages/score.py).
Every work unit (one model on one task, one model on one benchmark, one judge pass) has a key
that hashes everything its result depends on. A finished unit is written to the run directory
at once and marked done, so ``harness run --resume RUN`` skips it and an interrupted or failed
run loses nothing already computed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig
from harness.errors import HarnessError
from harness.progress import Progress
from harness.stages.plan import Plan


def execute(plan: Plan, rundir, progress: Progress) -> None:
    """Run every unit not already done in ``rundir``, stage by stage (scores come after). The
    per-sample metrics come last, after the models are released: their encoders never share
    memory with a language model."""
    from harness.env import release_memory
    from harness.stages import benchmark, generate, judge, metrics, parity, preference

    model_info: dict[str, Any] = rundir.run_info().get("models", {}) if rundir.exists("run.json") else {}
    if any(getattr(plan.resolved.get(n), "kind", "") == "served" for n in plan.models):
        plan.pool().use_served_cache(rundir.served_cache_path())
    executor = None
    plan.use_progress(progress)
    cluster = plan.config.cluster
    if cluster is not None and cluster.engine == "ray" and plan.resolved:  # harness/cluster (imports Ray)
        from harness.cluster.ray_workers import start_cluster

        executor = start_cluster(plan.resolved, plan.config.cluster, progress)
        plan.use_executor(executor)
        progress.log(f"cluster: {executor.workers} workers, shards of {plan.shard_size}")
        for node in executor.crowded_nodes():
            progress.log(f"note: cluster node {node}: the threads wait on each other; run with fewer workers "
                         "or set OMP_NUM_THREADS (same numbers as a plain run with as many threads; docs/cluster.md)")
        _record_workers(rundir, executor, plan.shard_size)
    try:
        generate.execute(plan, rundir, progress, model_info)
        preference.execute(plan, rundir, progress, model_info)
        benchmark.execute(plan, rundir, progress, model_info)
        generate.save_models(rundir, model_info)
        if plan.judge_backend is not None:
            judge.execute(plan, rundir, progress, pool_factory=plan.pool)
        parity.execute(plan, rundir, progress, model_info)
    finally:
        plan.close()
        if executor is not None:
            executor.close()
    release_memory()
    metrics.execute(plan, rundir, progress)


def _record_workers(rundir, executor, shard_size: int) -> None:
    """run.json ``clusters``: where this run's (or this resume's) workers ran, for audits."""
    info = rundir.run_info()
    info.setdefault("clusters", []).append({"at": _now(), "shard_size": shard_size,
                                            "workers": [{k: w.get(k) for k in ("node", "node_id", "host", "pid")}
                                                        for w in executor.where]})
    rundir.write_json("run.json", info)


def start_rundir(cfg: HarnessConfig, plan: Plan, output_dir: str | None, resume: str | None):
    """A new run directory (config snapshot + run.json), or the one to resume.

    Resuming under a changed config is allowed: unit keys hash everything a unit depends on, so
    units whose key still matches are reused and the rest are computed; run.json records the
    new config and the resume."""
    from harness.store import RunDir

    if resume:
        check_resume(resume)
        rundir = RunDir(resume)
        info = rundir.run_info()
        old = info.get("config_hash")
        if old != cfg.hash():
            _write_config(rundir, cfg)
        info.update(_plan_info(cfg, plan))
        info.setdefault("resumes", []).append({"at": _now(), "config_hash": cfg.hash(), "previous_config": old,
                                               "units_before": rundir.finished_units()})
        rundir.write_json("run.json", info)
        return rundir
    root = Path(output_dir) if output_dir else cfg.output_root()
    rundir = RunDir.create(root, config_hash=cfg.hash())
    _write_config(rundir, cfg)
    rundir.write_json("run.json", {"run_id": rundir.path.name, "created": _now(), **_plan_info(cfg, plan),
                                   "models": {}})
    return rundir


def _write_config(rundir, cfg: HarnessConfig) -> None:
    import yaml

    rundir.write_text("config.yaml", yaml.safe_dump(cfg.snapshot(), allow_unicode=True, sort_keys=False))


def check_resume(resume: str | Path) -> None:
    if not (Path(resume) / "run.json").is_file():
        raise HarnessError(f"--resume {resume}: not a run directory (no run.json)",
                           fix="Pass a folder that `harness run` created, e.g. reports/<run-id>.")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plan_info(cfg: HarnessConfig, plan: Plan) -> dict[str, Any]:
    from harness.env import environment

    info = {
        "config_hash": cfg.hash(),
        "models_order": plan.models,
        "tasks": [t.name for t in plan.tasks],
        "benchmarks": [b.name for b in cfg.benchmarks],
        "env": environment(Path(cfg.base_dir)),
        "judge": {"backend": plan.judge_label, "small_local": plan.judge_label.startswith("hf:"),
                  "judges": [d.name for d in plan.judges] if plan.judge_backend is not None else []},
    }
    if plan.preference_tasks:  # scored as task groups, never pooled into `all`
        info["preference_tasks"] = [t.name for t in plan.preference_tasks]
    if plan.trusted:
        info["trust_remote_code"] = plan.trusted
    if plan.switched_off:  # the gate fails these closed ("configured but did not run")
        info["switched_off"] = plan.switched_off
    return info


def after_failure(rundir, created: bool, err: BaseException) -> BaseException:
    """What a failed run leaves: nothing, when this call created the run directory and neither a
    unit nor a shard finished (an input error); else what finished, and an error that says how to
    resume."""
    import shutil

    if created and rundir.finished_units() == 0 and rundir.finished_shards() == 0:
        shutil.rmtree(rundir.path, ignore_errors=True)
        return err
    hint = (f"finished units are kept in {rundir.path}: after fixing the cause, continue with "
            f"`harness run --resume {rundir.path}`")
    if isinstance(err, HarnessError):
        new = HarnessError(f"{err}; {hint}")
        new.__cause__ = err.__cause__
        return new
    err.run_dir = str(rundir.path)  # the CLI's one-line report for unexpected errors names it
    if hasattr(err, "add_note"):
        err.add_note(hint)
    return err
