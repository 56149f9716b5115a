"""Logging a finished run to MLflow / W&B (read back with their own readers), lm-eval-style results
files, and the checks that run before anything loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.errors import HarnessError
from harness.tracking import Target, check_targets, lm_eval_results, parse_targets
from harness.tracking.collect import run_metrics, run_params

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_demo"


@pytest.fixture
def run_copy(tmp_path):
    """The stored demo run with its reports written (what `harness run` leaves)."""
    from harness import api

    run = tmp_path / "reports" / FIXTURE.name
    shutil.copytree(FIXTURE, run)
    api.report(run)
    return run


def _scores(run: Path) -> dict:
    return json.loads((run / "scores.json").read_text())


# ------------------------------------------------------------------ targets


def test_parse_targets():
    assert parse_targets(["mlflow", "wandb,mlflow:/tmp/store", "mlflow"]) == [
        Target("mlflow"), Target("wandb"), Target("mlflow", "/tmp/store")]
    assert parse_targets("none") == [] and parse_targets(None) == []
    assert parse_targets("mlflow:http://127.0.0.1:5000")[0].uri == "http://127.0.0.1:5000"
    with pytest.raises(HarnessError, match="not a tracker"):
        parse_targets(["tensorbored"])
    with pytest.raises(HarnessError, match="no address"):
        parse_targets(["wandb:somewhere"])


def test_missing_package_is_one_line_with_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(HarnessError) as err:
        check_targets([Target("mlflow")])
    assert "not installed" in str(err.value) and "pip install" in (err.value.fix or "")


def _one_error_line(result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_cli_run_checks_trackers_before_anything_loads(monkeypatch, tmp_path):
    import importlib.util

    from harness.cli import app

    def boom(*a, **k):
        raise AssertionError("planned a run although a tracker is missing")

    monkeypatch.setattr("harness.stages.plan.make_plan", boom)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    out = tmp_path / "runs"
    line = _one_error_line(CliRunner().invoke(app, ["run", "--log", "wandb", "-o", str(out)], env=env))
    assert "wandb package is not installed" in line and "pip install" in line
    line = _one_error_line(CliRunner().invoke(app, ["run", "--log", "comet", "-o", str(out)], env=env))
    assert "not a tracker" in line
    assert not out.exists()


def test_tracking_is_not_imported_by_the_cli_or_the_package():
    code = ("import harness.cli, harness.tracking, harness.stages.score, sys; "
            "print([m for m in ('mlflow', 'wandb') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_config_tracking_section_does_not_change_the_hash(tmp_path):
    from harness.config import config_from_dict

    base = {"models": {"m": {"path": "x"}}, "tasks": ["demo-en"]}
    plain = config_from_dict(base, base_dir=tmp_path)
    tracked = config_from_dict({**base, "tracking": {"log": ["mlflow"], "project": "p"}}, base_dir=tmp_path)
    assert tracked.tracking.project == "p" and tracked.hash() == plain.hash()
    assert "tracking" not in plain.snapshot() and tracked.snapshot()["tracking"]["log"] == ["mlflow"]
    with pytest.raises(HarnessError):
        config_from_dict({**base, "tracking": {"projekt": "p"}}, base_dir=tmp_path)


# ------------------------------------------------------------------ what is logged


def test_metrics_carry_intervals_and_n_and_params_are_flat():
    scores = _scores(FIXTURE)
    metrics = run_metrics(scores)
    mv = scores["groups"]["demo-en"]["models"]["sft"]["rougeL"]
    assert metrics["sft/demo-en/rougeL"] == mv["value"]
    assert (metrics["sft/demo-en/rougeL_lo"], metrics["sft/demo-en/rougeL_hi"]) == tuple(mv["ci"])
    assert metrics["sft/demo-en/rougeL_n"] == mv["n"]
    paired = next(p for p in scores["groups"]["demo-en"]["paired"] if p["metric"] == "rougeL")
    assert metrics[f"paired/{paired['a']}-vs-{paired['b']}/demo-en/rougeL"] == paired["diff"]
    assert metrics[f"paired/{paired['a']}-vs-{paired['b']}/demo-en/rougeL_p"] == paired["p_value"]
    from harness.store import RunDir

    run = RunDir(FIXTURE)
    params = run_params(run.config(), run.run_info())
    assert params["models.sft"] == "runs/sft-ko" and params["run.id"] == run.run_id
    assert json.loads(params["tasks"]) == ["demo-en", "demo-ko", "demo-json"]
    assert all(isinstance(v, str) for v in params.values())


def test_mlflow_store_read_back_with_mlflow_client(run_copy, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from harness.tracking import log_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = tmp_path / "mlruns"
    lines = log_run(run_copy, [Target("mlflow", str(store))], project="harness-test")
    assert "harness-test" in lines[0]
    assert (store / "mlflow.db").is_file() and (store / "artifacts").is_dir()  # the folder is the store
    client = MlflowClient(tracking_uri=f"sqlite:///{store.resolve()}/mlflow.db")
    exp = client.get_experiment_by_name("harness-test")
    (run,) = client.search_runs([exp.experiment_id])
    scores = _scores(run_copy)
    sft = scores["groups"]["demo-en"]["models"]["sft"]["rougeL"]
    assert run.data.metrics["sft/demo-en/rougeL"] == pytest.approx(sft["value"])
    assert run.data.metrics["sft/demo-en/rougeL_lo"] == pytest.approx(sft["ci"][0])
    assert run.data.metrics["sft/demo-en/rougeL_hi"] == pytest.approx(sft["ci"][1])
    assert run.data.metrics["sft/demo-en/rougeL_n"] == sft["n"]
    assert len(run.data.metrics) == len(run_metrics(scores))
    assert run.data.params["models.sft"] == "runs/sft-ko" and run.data.params["run.id"] == scores["run_id"]
    assert run.data.tags["harness.run_id"] == scores["run_id"] and run.info.run_name == scores["run_id"]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "report.md", "scores.json", "config.yaml"} <= names
    local = client.download_artifacts(run.info.run_id, "scores.json", str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text()) == scores


def test_cli_log_re_logs_a_stored_run_to_mlflow(run_copy, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from harness.cli import app

    monkeypatch.chdir(tmp_path)  # nothing may land in the current folder
    db = f"sqlite:///{tmp_path.resolve()}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)  # honoured when --to names no store
    res = CliRunner().invoke(app, ["log", str(run_copy), "--to", "mlflow"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "mlflow: run" in res.output and db in res.output
    client = MlflowClient(tracking_uri=db)
    (run,) = client.search_runs([client.get_experiment_by_name("harness").experiment_id])
    assert "base/mmlu-mini/acc" in run.data.metrics
    assert (tmp_path / "artifacts").is_dir() and not (tmp_path / "mlruns").exists()  # beside the database
    # a folder that is not a run: one line, exit 2
    line = _one_error_line(CliRunner().invoke(app, ["log", str(tmp_path), "--to", "mlflow"],
                                              env={"COLUMNS": "200", "NO_COLOR": "1"}))
    assert "error:" in line


def _wandb_records(run_dir: Path):
    """The records of an offline run's ``run-<id>.wandb`` log (what `wandb sync` uploads): the
    LevelDB-style log wandb writes (":W&B" header, 32 KiB blocks, 7-byte record headers) holding
    wandb's own protobuf Records."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos < len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def test_wandb_offline_run_has_the_metrics(run_copy, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from harness.tracking import log_run

    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    lines = log_run(run_copy, [Target("wandb")])
    assert lines[0].startswith("wandb (offline)")
    (run_dir,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    import time

    records, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:  # wandb's service process may still be writing its log on a busy machine
        try:
            records = list(_wandb_records(run_dir))
        except Exception:  # a record half written: read again
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        time.sleep(0.5)
    summary, history, config, files = {}, {}, {}, set()
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "summary":
            summary.update({u.key or ".".join(u.nested_key): json.loads(u.value_json) for u in r.summary.update})
        elif kind == "history":
            history.update({i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
        elif kind == "run":
            config.update({u.key: json.loads(u.value_json) for u in r.run.config.update})
        elif kind == "artifact":
            files |= {c.path for c in r.artifact.manifest.contents}
    scores = _scores(run_copy)
    sft = scores["groups"]["demo-en"]["models"]["sft"]["rougeL"]
    for logged in (summary, history):
        assert logged["sft/demo-en/rougeL"] == pytest.approx(sft["value"])
        assert logged["sft/demo-en/rougeL_lo"] == pytest.approx(sft["ci"][0])
        assert logged["sft/demo-en/rougeL_hi"] == pytest.approx(sft["ci"][1])
        assert logged["sft/demo-en/rougeL_n"] == sft["n"]
    assert set(run_metrics(scores)) <= set(history)
    assert config["models"]["sft"] == "runs/sft-ko" and config["run"]["id"] == scores["run_id"]
    assert {"report.html", "report.md", "scores.json"} <= files


# ------------------------------------------------------------------ lm-eval-style results


def test_lm_eval_results_shape_and_values(run_copy):
    from harness.store import RunDir
    from harness.tracking import write_lm_eval_results

    run = RunDir(run_copy)
    scores = _scores(run_copy)
    paths = write_lm_eval_results(run, scores)
    assert sorted(p.name for p in paths) == ["results_base.json", "results_dpo.json", "results_sft.json"]
    data = json.loads((run_copy / "results_sft.json").read_text())
    for key in ("results", "groups", "group_subtasks", "versions", "n-shot", "higher_is_better", "n-samples",
                "config", "model_name", "date"):
        assert key in data, key
    assert data["model_name"] == "sft" and data["config"]["model_args"] == "runs/sft-ko"
    groups = scores["groups"]
    for task in ("demo-en", "demo-ko", "demo-json", "mmlu-mini", "judge"):
        entry = data["results"][task]
        assert entry["alias"] == task and task in data["n-shot"] and task in data["versions"]
        for metric, mv in groups[task]["models"]["sft"].items():
            assert entry[f"{metric},none"] == mv["value"], (task, metric)
            se = entry[f"{metric}_stderr,none"]
            assert se == (mv["stderr"] if mv.get("stderr") is not None
                          else (mv["ci"][1] - mv["ci"][0]) / 3.919927969080108)
            assert data["higher_is_better"][task][metric] == mv["higher_is_better"]
    assert data["groups"]["all"]["rougeL,none"] == groups["all"]["models"]["sft"]["rougeL"]["value"]
    assert data["group_subtasks"]["all"] == groups["all"]["info"]["tasks"]
    # a pairwise group whose entries are pairs ("sft_vs_base"), not models, is not any model's result
    pairwise = {"models": ["a", "b"], "groups": {"judge-pairwise": {"kind": "judge", "models": {
        "b_vs_a": {"win": {"value": 0.6, "ci": [0.4, 0.8], "n": 20}}}}}}
    assert lm_eval_results(pairwise, {}, {}, "b")["results"] == {}
    assert data["n-samples"]["mmlu-mini"]["effective"] == groups["mmlu-mini"]["models"]["sft"]["acc"]["n"]


def test_benchmark_entries_copy_lm_eval_results():
    scores = {"models": ["m"], "groups": {"mmlu-mini": {
        "kind": "benchmark", "models": {"m": {"acc": {"value": 0.5, "ci": [0.3, 0.7], "n": 30, "stderr": 0.09}}},
        "info": {"num_fewshot": 5, "n": {"m": 30}, "lm_eval_version": "0.4.13"}}}}
    raw = {"alias": "mmlu (mini)", "acc,none": 0.5, "acc_stderr,none": 0.0928, "acc_norm,none": 0.4}
    data = lm_eval_results(scores, {}, {}, "m", {"mmlu-mini": {"lm_eval_raw": raw}})
    assert data["results"]["mmlu-mini"] == raw
    assert data["n-shot"]["mmlu-mini"] == 5 and data["lm_eval_version"] == "0.4.13"
    assert lm_eval_results(scores, {}, {}, "m", {})["results"]["mmlu-mini"]["acc_stderr,none"] == 0.09


def test_score_stage_writes_results_files(make_run):
    from harness.records import Sample
    from harness.stages import score

    samples = {(m, "t"): [Sample(id=str(i), task="t", model=m, metrics={"exact_match": float(i % 2 or m == "b")})
                          for i in range(12)] for m in ("a", "b")}
    run = make_run(samples=samples, run_info={"run_id": "r", "models_order": ["a", "b"], "tasks": ["t"]})
    scores = score.execute(run, n_resamples=200)
    data = json.loads((run.path / "results_b.json").read_text())
    mv = scores["groups"]["t"]["models"]["b"]["exact_match"]
    assert data["results"]["t"]["exact_match,none"] == mv["value"] == 1.0
    assert mv["ci_method"] == "wilson" and mv["ci"][0] == pytest.approx(12 / (12 + 1.959964 ** 2), abs=1e-6)  # 12/12
