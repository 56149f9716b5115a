"""``log_run``: send a finished run (read from its run directory only) to each tracker."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from harness.errors import HarnessError
from harness.tracking.targets import DEFAULT_PROJECT, Target, check_targets


def project_name(config: dict, project: str | None = None) -> str:
    """The MLflow experiment / W&B project: the argument, else the config's ``tracking.project``,
    else "harness"."""
    if project:
        return project
    tracking = config.get("tracking") if isinstance(config, dict) else None
    if isinstance(tracking, dict) and tracking.get("project"):
        return str(tracking["project"])
    return DEFAULT_PROJECT


def log_run(run_dir: str | os.PathLike, targets: Iterable[Target], project: str | None = None) -> list[str]:
    """Log the run's config (params), every aggregate with its interval (metrics) and its reports
    (artifacts) to each target; returns one line per target saying where it went. A tracker that
    fails raises a HarnessError naming ``harness log RUN --to ...`` (the run itself is kept)."""
    from harness.store import open_run
    from harness.tracking.collect import run_artifacts, run_metrics, run_params

    targets = list(targets)
    check_targets(targets)
    rundir = open_run(run_dir)
    scores, config, info = rundir.scores(), rundir.config(), rundir.run_info()
    name = project_name(config, project)
    params, metrics = run_params(config, info), run_metrics(scores)
    files = run_artifacts(Path(rundir.path))
    lines = []
    for t in targets:
        try:
            if t.kind == "mlflow":
                from harness.tracking.to_mlflow import log_mlflow

                lines.append(log_mlflow(t, rundir.run_id, name, params, metrics, files))
            else:
                from harness.tracking.to_wandb import log_wandb

                lines.append(log_wandb(rundir.run_id, name, config, params, metrics, files))
        except HarnessError:
            raise
        except Exception as err:  # a tracker's own error: say which, keep the run
            raise HarnessError(f"logging to {t} failed: {type(err).__name__}: {err}",
                               fix=f"the run is complete in {rundir.path}; retry with "
                                   f"`harness log {rundir.path} --to {t}`") from err
    return lines
