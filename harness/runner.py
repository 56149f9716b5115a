"""The executor: sequences the stages of a run and owns the run directory's lifecycle.

plan (stages/plan.py) -> generate -> benchmark -> judge (stages/*.py) -> score (stages/score.py).
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
    """Run every unit not already done in ``rundir``, stage by stage (scores come after)."""
    from harness.stages.benchmark import run_benchmarks_for
    from harness.stages.generate import run_generation, save_models
    from harness.stages.judge import judge_run

    cfg = plan.config
    model_info: dict[str, Any] = rundir.run_info().get("models", {}) if rundir.exists("run.json") else {}
    try:
        run_generation(plan, rundir, progress, model_info)
        for name in plan.models:
            if cfg.benchmarks and not cfg.models[name].responses:
                run_benchmarks_for(plan, plan.pool(), name, rundir, progress)
                model_info.setdefault(name, plan.pool().describe(name))
        save_models(rundir, model_info)
        if plan.judge_backend is not None:
            judge_run(plan, rundir, progress, pool_factory=plan.pool)
    finally:
        plan.close()


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
