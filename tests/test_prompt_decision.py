"""How a model is prompted is decided once (``ModelPool.format``): ``harness models`` reports the
format that ``harness run`` then uses, through the real entry points (api.resolve_models,
api.print_models, api.run) on tiny models.

Two cases used to disagree:
- a tokenizer without a chat template: ``harness models`` said "chat" and ``harness run`` failed
  with "the tokenizer has no chat template"; now both say alpaca and the run prompts with it;
- ``prompt_format: my.jinja`` relative to the config file: ``harness run`` looked for it in the
  current directory; now both find it in the config's folder, wherever the run starts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from harness import api

ALPACA_START = "Below is an instruction that describes a task"
ROWS = [{"instruction": "Give the antonym of the word.", "input": "hot", "output": "cold"},
        {"instruction": "What is the capital of France?", "input": "", "output": "Paris"}]


def _without_chat_template(base: Path, out: Path) -> Path:
    """A copy of the tiny base whose tokenizer has no chat template (as many base models ship)."""
    shutil.copytree(base, out)
    for f in out.glob("chat_template*"):
        f.unlink()
    shutil.rmtree(out / "additional_chat_templates", ignore_errors=True)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    from transformers import AutoTokenizer

    assert not AutoTokenizer.from_pretrained(out).chat_template
    return out


def _project(root: Path, models: dict) -> Path:
    """A config folder with one generation task; returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    (root / "tiny.yaml").write_text(yaml.safe_dump({"name": "tiny", "data": "data.jsonl",
                                                    "metrics": ["exact_match"]}))
    cfg = {"models": models, "tasks": ["tiny.yaml"], "generation": {"max_new_tokens": 4},
           "bootstrap_resamples": 100, "output_dir": "out"}
    (root / "harness.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return root / "harness.yaml"


def _run(config: Path) -> tuple[dict, dict[str, list[dict]]]:
    """api.run; returns run.json's models and each model's samples of the task."""
    run = api.run(config, quiet=True).path
    models = json.loads((run / "run.json").read_text(encoding="utf-8"))["models"]
    samples = {m: [json.loads(line) for line in (run / "samples" / m / "tiny.jsonl").read_text().splitlines()]
               for m in models}
    return models, samples


@pytest.fixture
def no_template_project(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    plain = _without_chat_template(tiny_models["base"], tmp_path / "plain")
    return _project(tmp_path / "proj", {
        "chat": {"path": str(tiny_models["base"])},
        "plain": {"path": str(plain)},
        # an adapter without tokenizer files takes its base's tokenizer, and so its format
        "plain_sft": {"adapter": str(tiny_models["lora_a"]), "base": "plain"},
    })


def test_no_chat_template_runs_with_alpaca_as_harness_models_reports(no_template_project):
    reported = {n: d["template"] for n, d in api.resolve_models(no_template_project).items()}
    assert reported == {"chat": "chat", "plain": "alpaca", "plain_sft": "alpaca"}

    models, samples = _run(no_template_project)  # used to fail: "the tokenizer has no chat template"
    assert {n: models[n]["template"] for n in reported} == reported
    for name in ("plain", "plain_sft"):
        assert samples[name] and all(s["prompt"].startswith(ALPACA_START) for s in samples[name])
        assert "### Instruction:\nGive the antonym of the word." in samples[name][0]["prompt"]
    assert all(s["prompt"].startswith("<|user|>\n") for s in samples["chat"])


@pytest.fixture
def jinja_project(tiny_models, tmp_path, monkeypatch):
    """my.jinja next to the config; the run starts in another folder holding a decoy my.jinja."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    config = _project(tmp_path / "proj", {"m": {"path": str(tiny_models["base"]), "prompt_format": "my.jinja"}})
    (config.parent / "my.jinja").write_text("CONFIG-TEMPLATE {{ instruction }}{% if input %} | {{ input }}{% endif %}"
                                            "\nANSWER:", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "my.jinja").write_text("DECOY {{ instruction }}\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    return Path(os.path.relpath(config, elsewhere))  # as in `harness run --config ../proj/harness.yaml`


def test_relative_prompt_format_file_is_found_from_the_config_folder(jinja_project):
    template = (Path.cwd() / jinja_project).parent.resolve() / "my.jinja"
    assert api.resolve_models(jinja_project)["m"]["template"] == str(template)

    models, samples = _run(jinja_project)
    assert models["m"]["template"] == "file:my.jinja"
    prompts = [s["prompt"] for s in samples["m"]]
    assert prompts == ["CONFIG-TEMPLATE Give the antonym of the word. | hot\nANSWER:",
                       "CONFIG-TEMPLATE What is the capital of France?\nANSWER:"]


def test_print_models_shows_the_format_the_run_uses(no_template_project, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    api.print_models(no_template_project)
    rows = {line.split("│")[1].strip(): line for line in capsys.readouterr().out.splitlines()
            if line.count("│") > 2 and line.split("│")[1].strip() in ("chat", "plain", "plain_sft")}
    assert "alpaca" in rows["plain"] and "alpaca" in rows["plain_sft"] and "alpaca" not in rows["chat"]
