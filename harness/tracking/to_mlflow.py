"""MLflow: one MLflow run per harness run, in experiment ``project``, through MlflowClient (no
global state). The store is the target's URI, else MLFLOW_TRACKING_URI, else the folder ./mlruns.

A folder is a real local tracking store: MLflow >= 3.13 refuses its old file-per-value store, so a
folder holds the SQLite database ``mlflow.db`` (runs, params, metrics) and ``artifacts/`` (files);
``mlflow ui --backend-store-uri sqlite:///<folder>/mlflow.db`` shows it. A URI with a scheme
(http://, sqlite:///, databricks) is used as given; a new experiment in a local SQLite database
keeps its artifacts in ``artifacts/`` beside the database (MLflow's default would be ./mlruns of
whatever folder the command ran in)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness.tracking.targets import Target

_BATCH_PARAMS, _BATCH_METRICS = 100, 1000  # MLflow's per-request limits of log_batch


def store(target: Target) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment; None: the server's default). A folder
    (``./mlruns``, ``/abs/store``) becomes ``sqlite:///<folder>/mlflow.db`` + ``<folder>/artifacts``."""
    uri = target.uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
    if uri.startswith("sqlite:///") and ":memory:" not in uri:  # artifacts beside the database, not in ./mlruns
        return uri, (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "artifacts").as_uri()
    if "://" in uri or uri.startswith(("sqlite:", "databricks", "file:")):
        return uri, None
    folder = Path(uri).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def log_mlflow(target: Target, run_id: str, project: str, params: dict[str, str],
               metrics: dict[str, float], files: list[Path]) -> str:
    import logging

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." is not news
        logging.getLogger(name).setLevel(logging.WARNING)
    uri, artifacts = store(target)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(project)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(project, artifact_location=artifacts)
    run = client.create_run(exp_id, run_name=run_id, tags={"harness.run_id": run_id})
    rid = run.info.run_id
    now = int(time.time() * 1000)
    ps = [Param(k, v) for k, v in params.items()]
    ms = [Metric(k, v, now, 0) for k, v in metrics.items()]
    for i in range(0, len(ps), _BATCH_PARAMS):
        client.log_batch(rid, params=ps[i:i + _BATCH_PARAMS])
    for i in range(0, len(ms), _BATCH_METRICS):
        client.log_batch(rid, metrics=ms[i:i + _BATCH_METRICS])
    client.log_batch(rid, tags=[RunTag("harness.source", "harness run")])
    for f in files:
        client.log_artifact(rid, str(f))
    client.set_terminated(rid)
    return f"mlflow: run {rid} in experiment {project!r} at {uri}"
