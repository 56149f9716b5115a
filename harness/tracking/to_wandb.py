"""Weights & Biases: one W&B run per harness run in project ``project``. Offline unless told
otherwise: WANDB_MODE is honoured; without it the run is offline when no WANDB_API_KEY is set
(nothing leaves the machine; `wandb sync` uploads it later). Files go under WANDB_DIR (default: .)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def log_wandb(run_id: str, project: str, config: dict[str, Any], params: dict[str, str],
              metrics: dict[str, float], files: list[Path]) -> str:
    import wandb

    mode = wandb_mode()
    root = Path(os.environ.get("WANDB_DIR") or ".").resolve()
    root.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=os.environ.get("WANDB_PROJECT") or project, name=run_id, mode=mode, dir=str(root),
                     config={**config, "run": {k[4:]: v for k, v in params.items() if k.startswith("run.")}},
                     job_type="evaluation", tags=["harness"],
                     settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
    try:
        run.log(metrics, step=0)
        run.summary.update(metrics)
        art = wandb.Artifact(f"harness-{run_id}", type="evaluation")
        for f in files:
            art.add_file(str(f), name=f.name)
        run.log_artifact(art)
        where = run.dir
    finally:
        run.finish()
    return f"wandb ({mode}): run {run_id} in project {project!r}, files in {Path(where).parent}"
