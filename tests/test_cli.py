"""The `harness` command line: fast help, no heavy imports, and exit code 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

VENV_BIN = Path(sys.executable).parent
HEAVY = ("torch", "transformers", "peft", "trl", "lm_eval", "mlflow", "wandb")


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def _user_error(*args: str) -> str:
    """Run the CLI; it must exit 2 with exactly one 'error:' line and no traceback."""
    result = _invoke(*args)
    out = result.output
    assert result.exit_code == 2, (result.exit_code, out, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in out
    lines = [x for x in out.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    return lines[0]


def _fake_model_dirs(root: Path, dpo_base_null: bool = False) -> None:
    """Folders that resolve like a base model and two adapters (resolving reads no weights)."""
    (root / "m" / "base").mkdir(parents=True)
    (root / "m" / "base" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for name in ("sft", "dpo"):
        (root / "a" / name).mkdir(parents=True)
        (root / "a" / name / "adapter_config.json").write_text(json.dumps(
            {"peft_type": "LORA", "base_model_name_or_path": None if dpo_base_null else "../../m/base"}))


# ------------------------------------------------------------------ speed and imports


def test_help_is_fast_in_a_subprocess():
    exe = VENV_BIN / "harness"
    cmd = [str(exe), "--help"] if exe.is_file() else [sys.executable, "-m", "harness.cli", "--help"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "report", "gate", "compare", "models", "tasks", "train", "demo"):
        assert command in proc.stdout
    assert wall < 5.0, f"`harness --help` took {wall:.1f} s"


def test_importing_the_cli_imports_no_heavy_library():
    code = f"import harness.cli, sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------ bad input -> exit 2, one line


def test_broken_yaml_config(tmp_path):
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  base: {path: x\ntasks: [demo-en]\n")
    line = _user_error("run", "-c", str(cfg))
    assert f"{cfg}:" in line and "not valid YAML" in line
    line = _user_error("models", "-c", str(cfg))
    assert "not valid YAML" in line
    assert "config file not found" in _user_error("run", "-c", str(tmp_path / "nope.yaml"))


def test_unknown_field_and_unknown_model(tmp_path):
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  base: {path: x, dtpye: float32}\n")
    assert "field 'models.base.dtpye': unknown field" in _user_error("run", "-c", str(cfg))
    cfg.write_text("models:\n  base: {path: x}\n  sft: {adapter: y, base: base}\ntasks: [demo-en]\n")
    line = _user_error("run", "-c", str(cfg), "--models", "base,nope")
    assert "--models: unknown model 'nope'" in line and "Configured models: base, sft" in line


def test_adapter_without_base_suggests_base(tmp_path):
    _fake_model_dirs(tmp_path, dpo_base_null=True)
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  sft: {adapter: a/sft}\ntasks: [demo-en]\n")
    for cmd in ("run", "models"):
        line = _user_error(cmd, "-c", str(cfg))
        assert "models.sft: adapter a/sft has no usable base" in line
        assert "base_model_name_or_path = None" in line and "add `base: <model name or path>` to models.sft" in line


def test_task_data_with_a_non_json_line(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "output": \n')
    (tmp_path / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [exact_match]\n")
    (tmp_path / "answers.jsonl").write_text('{"instruction": "a", "model_response": "b"}\n')
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  mine: {responses: answers.jsonl}\ntasks: [t.yaml]\noutput_dir: out\n")
    line = _user_error("run", "-c", str(cfg), "-q")
    assert f"{data}:3: not valid JSON" in line and "Each line must be one JSON object" in line
    assert not (tmp_path / "out").exists()  # checked while planning: no half-made run directory


def test_bad_task_name_and_run_dirs(tmp_path):
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  mine: {responses: answers.jsonl}\ntasks: [no-such-task]\n")
    (tmp_path / "answers.jsonl").write_text('{"instruction": "a", "model_response": "b"}\n')
    line = _user_error("run", "-c", str(cfg))
    assert "unknown task 'no-such-task'" in line and "demo-en" in line
    missing = tmp_path / "reports" / "20990101-000000"
    line = _user_error("report", str(missing))
    assert str(missing) in line and "does not exist" in line
    cfg.write_text("models:\n  mine: {responses: answers.jsonl}\ntasks: [demo-en]\n")
    line = _user_error("run", "-c", str(cfg), "--resume", str(missing))
    assert "not a run directory" in line


def test_unreachable_judge_is_exit_2(tmp_path):
    from fake_judge_server import free_port

    from harness.tasks import load_samples, load_tasks

    items = load_samples(load_tasks(["demo-en"])[0])  # a complete answers file: the judge is what fails
    (tmp_path / "answers.jsonl").write_text("".join(
        json.dumps({"instruction": s.instruction, "input": s.input, "model_response": "b"}) + "\n" for s in items))
    cfg = tmp_path / "harness.yaml"
    port = free_port()
    cfg.write_text(f"models:\n  mine: {{responses: answers.jsonl}}\ntasks: [demo-en]\n"
                   f"judge: {{backend: 'ollama:llama3', host: 'http://127.0.0.1:{port}'}}\n")
    line = _user_error("run", "-c", str(cfg), "-q")
    assert f"Ollama is not reachable at http://127.0.0.1:{port}" in line


# ------------------------------------------------------------------ read-only commands


def test_models_prints_the_resolved_chain(tmp_path):
    _fake_model_dirs(tmp_path)
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  base: {path: m/base}\n  sft: {adapter: a/sft, base: base}\n"
                   "  dpo: {adapter: a/dpo, base: sft}\n  mine: {responses: answers.jsonl}\n")
    (tmp_path / "answers.jsonl").write_text('{"instruction": "a", "model_response": "b"}\n')
    result = _invoke("models", "-c", str(cfg))
    assert result.exit_code == 0, result.output
    out = result.output
    dpo_row = out[out.index("│ dpo"):]
    chain = ["base (m/base)", f"-> sft ({tmp_path / 'a' / 'sft'})", f"-> dpo ({tmp_path / 'a' / 'dpo'})"]
    positions = [dpo_row.index(c) for c in chain]
    assert positions == sorted(positions)  # base -> sft -> dpo, in that order
    assert "responses" in out and "mine" in out


def test_tasks_lists_the_demo_tasks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./harness.yaml here: the built-in demo config is used
    result = _invoke("tasks")
    assert result.exit_code == 0, result.output
    for name in ("demo-en", "demo-ko", "demo-json"):
        assert name in result.output
    assert "suite" in result.output
    # the demo config sits beside its folders but is not a task (it was once listed as a broken one)
    assert "harness" not in [line.split("│")[1].strip() for line in result.output.splitlines() if "│" in line]


def test_tasks_lists_tasks_and_benchmarks_not_every_yaml_file(tmp_path, monkeypatch):
    """Task files in tasks/ folders and the configured tasks, then the benchmarks; the config
    itself, a gate file or any other YAML beside it is not a task (nor a "broken" one)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (tmp_path / "tasks" / "mine.yaml").write_text("name: mine\ndata: ../d.jsonl\nmetrics: [exact_match]\n")
    (tmp_path / "tasks" / "broken.yaml").write_text("name: broken\ndata: ../d.jsonl\nmetrics: [rogue]\n")
    (tmp_path / "extra.yaml").write_text("name: extra\ndata: d.jsonl\nmetrics: [length]\n")
    (tmp_path / "gates.yaml").write_text('gates: ["m.exact_match > 0.5"]\n')
    (tmp_path / "docker-compose.yaml").write_text("services: {}\n")
    (tmp_path / "harness.yaml").write_text("models: {m: {responses: a.jsonl}}\ntasks: [mine, extra.yaml]\n"
                                           "benchmarks: [{name: mmlu-mini, limit: 7}]\n")
    result = _invoke("tasks")
    assert result.exit_code == 0, result.output
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                          for line in result.output.splitlines() if line.startswith("│"))}
    assert rows["mine"][1:3] == ["task", "yes"] and rows["extra"][1:3] == ["task", "yes"]
    assert rows["demo-en"][1:3] == ["task", ""] and rows["demo"][1] == "suite" and rows["demo-pref"][1] == "preference"
    assert rows["broken"][1] == "broken" and "rogue" in rows["broken"][4]
    assert rows["mmlu-mini"][1:3] == ["benchmark", "yes"] and "limit 7" in rows["mmlu-mini"][5]
    assert rows["kmmlu-mini"][1:3] == ["benchmark", ""] and "hellaswag-mini" in rows
    for not_a_task in ("harness", "gates", "docker-compose"):
        assert not_a_task not in rows


def test_run_with_a_responses_model_from_the_cli(tmp_path):
    rows = [{"instruction": "Give the antonym.", "input": "hot", "output": "cold"},
            {"instruction": "Capital of France?", "input": "", "output": "Paris"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [exact_match, length]\n")
    (tmp_path / "answers.jsonl").write_text("".join(
        json.dumps({"instruction": r["instruction"], "input": r["input"], "model_response": r["output"]}) + "\n"
        for r in rows))
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  mine: {responses: answers.jsonl}\ntasks: [t.yaml]\noutput_dir: out\n"
                   "bootstrap_resamples: 100\n")
    result = _invoke("run", "-c", str(cfg), "-q")
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    assert f"run directory: {run}" in result.output
    scores = json.loads((run / "scores.json").read_text())
    assert scores["groups"]["t"]["models"]["mine"]["exact_match"]["value"] == pytest.approx(1.0)
    result = _invoke("report", str(run))
    assert result.exit_code == 0 and "report.html" in result.output


def test_api_verbs_are_not_shadowed_by_modules():
    """`from harness import run` is the API function in a fresh process, before and after the
    executor module is imported (a module named harness/run.py once shadowed it)."""
    import subprocess
    import sys

    code = ("from harness import run as before; import harness.runner, harness.api as api; "
            "from harness import run as after; assert before is api.run and after is api.run, (before, after)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_json_metric_on_text_references_fails_while_planning(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "plain text"}\n')
    (tmp_path / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [json]\n")
    (tmp_path / "answers.jsonl").write_text('{"instruction": "a", "model_response": "{}"}\n')
    cfg = tmp_path / "harness.yaml"
    cfg.write_text("models:\n  mine: {responses: answers.jsonl}\ntasks: [t.yaml]\noutput_dir: out\n")
    line = _user_error("run", "-c", str(cfg), "-q")
    assert "task t: item t-0000 has a reference that is not JSON" in line and "Remove 'json'" in line
    assert not (tmp_path / "out").exists()
