"""How harness fails: model-folder code never runs without consent, a run killed with -9 resumes
to the same scores, an unexpected error is one line plus a traceback file, and a run's stderr
carries no library chatter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from harness.cli import app

VENV_BIN = Path(sys.executable).parent
ROWS = [{"instruction": f"Repeat the number {i}.", "input": "", "output": str(i)} for i in range(6)]


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400", "NO_COLOR": "1"})


def _one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def _project(root: Path, models: dict, *, limit: int = 6, tasks: tuple = ("t.yaml",)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "t.yaml").write_text("name: t\ndata: data.jsonl\nmetrics: [exact_match, length, perplexity]\n")
    (root / "u.yaml").write_text("name: u\ndata: data.jsonl\nmetrics: [rouge, length]\n")
    cfg = {"models": models, "tasks": list(tasks), "limit": limit, "generation": {"max_new_tokens": 6},
           "bootstrap_resamples": 100, "output_dir": "out"}
    (root / "harness.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return root / "harness.yaml"


# ---------------------------------------------------------------- model-folder code needs consent

def _remote_code_model(root: Path, marker: Path) -> Path:
    """A model folder whose config asks for its own Python code; the code only writes ``marker``."""
    folder = root / "remote"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "hidden_size": 8,
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                     "AutoModelForCausalLM": "modeling_evil.EvilModel"}}))
    code = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
            "from transformers import PretrainedConfig\n"
            "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n")
    (folder / "configuration_evil.py").write_text(code)
    (folder / "modeling_evil.py").write_text(code)
    return folder


def test_trust_remote_code_in_the_config_alone_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    folder = _remote_code_model(tmp_path, marker)
    config = _project(tmp_path, {"m": {"path": str(folder), "trust_remote_code": True}})
    line = _one_line(_cli("run", "-c", str(config), "-q"))
    assert "models.m.trust_remote_code" in line and "--trust-remote-code" in line
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_folder_that_needs_remote_code_is_one_line_without_it(tmp_path):
    marker = tmp_path / "ran"
    folder = _remote_code_model(tmp_path, marker)
    config = _project(tmp_path, {"m": {"path": str(folder)}})
    line = _one_line(_cli("run", "-c", str(config), "-q"))
    assert "trust_remote_code" in line
    assert not marker.exists()


def test_with_consent_the_code_runs_and_is_recorded(tmp_path, monkeypatch):
    """The flag is the consent: then (and only then) the folder's code runs."""
    marker = tmp_path / "ran"
    folder = _remote_code_model(tmp_path, marker)
    config = _project(tmp_path, {"m": {"path": str(folder), "trust_remote_code": True}})
    monkeypatch.setenv("HARNESS_TRUST_REMOTE_CODE", "1")
    result = _cli("run", "-c", str(config), "-q")
    assert marker.exists()  # the consented code ran (it is not a loadable model, so the run then fails)
    assert result.exit_code != 0 and "Traceback" not in result.output


# ---------------------------------------------------------------- kill -9, then resume

def _scores_without_ids(run: Path) -> dict:
    scores = json.loads((run / "scores.json").read_text())
    scores.pop("run_id", None)
    return scores


def _harness(*args: str, **kw) -> subprocess.Popen:
    exe = VENV_BIN / "harness"
    cmd = [str(exe), *args] if exe.is_file() else [sys.executable, "-m", "harness.cli", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def test_kill_9_then_resume_gives_the_same_scores(tiny_models, tmp_path):
    models = {"base": {"path": str(tiny_models["base"])},
              "sft": {"adapter": str(tiny_models["lora_a"]), "base": "base"},
              "dpo": {"adapter": str(tiny_models["lora_on_a"]), "base": "sft"}}
    whole = _project(tmp_path / "whole", models, tasks=("t.yaml", "u.yaml"))
    proc = _harness("run", "-c", str(whole), "-q")
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    reference = _scores_without_ids(next((tmp_path / "whole" / "out").iterdir()))

    config = _project(tmp_path / "killed", models, tasks=("t.yaml", "u.yaml"))
    proc = _harness("run", "-c", str(config), "-q")
    out = tmp_path / "killed" / "out"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        units = list(out.glob("*/units/*.json"))
        if len(units) >= 2:  # some units finished, others not yet
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    run = next(out.iterdir())
    assert not (run / "scores.json").exists()
    done = len(list((run / "units").glob("*.json")))
    proc = _harness("run", "-c", str(config), "--resume", str(run))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert f"resume: {done} finished units reused" in stdout
    assert _scores_without_ids(run) == reference


# ---------------------------------------------------------------- one line, always

def test_an_unexpected_error_is_one_line_and_a_traceback_file(tmp_path, monkeypatch):
    from harness import api

    def boom(*args, **kwargs):
        raise ZeroDivisionError("something nobody expected")

    monkeypatch.setattr(api, "run", boom)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    line = _one_line(_cli("run", "-q"), code=3)
    assert "unexpected ZeroDivisionError: something nobody expected" in line and "please report it" in line
    path = Path(line.split("full traceback: ")[1].split(";")[0])
    assert path.is_file() and "ZeroDivisionError" in path.read_text() and "Traceback" in path.read_text()


def test_a_run_prints_no_library_chatter(tiny_models, tmp_path):
    """Redirected to a file (as CI logs are), a run's stderr holds no tqdm bars or warnings."""
    config = _project(tmp_path, {"base": {"path": str(tiny_models["base"])},
                                 "sft": {"adapter": str(tiny_models["lora_a"]), "base": "base"}}, limit=2)
    proc = _harness("run", "-c", str(config))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    for chatter in ("it/s]", "Warning", "warn(", "Loading weights", "fatal:"):
        assert chatter not in stderr, stderr
        assert chatter not in stdout, stdout
