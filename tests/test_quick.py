"""Quick runs without a harness.yaml: ``harness run --model NAME=SPEC ... --tasks ...``.

The flag grammar (harness/quick.py) as unit tests; the CLI's errors (one line, exit 2, no run
directory); and real runs of tiny models (an adapter stacked on another through ``@NAME``)
and, marked slow, of the demo's adapters on the zoo base.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.quick import parse_model_flag, parse_model_flags

DEMO = Path(__file__).resolve().parent.parent / "harness" / "demo"


@pytest.mark.parametrize("flag, expected", [
    ("base=zoo:smollm2-135m-instruct", {"path": "zoo:smollm2-135m-instruct"}),
    ("base=HuggingFaceTB/SmolLM2-135M-Instruct", {"path": "HuggingFaceTB/SmolLM2-135M-Instruct"}),
    ("base=./models/base", {"path": "./models/base"}),
    ("base=hf:org/name", {"path": "org/name"}),
    ("sft=adapter:out/sft", {"adapter": "out/sft"}),
    ("dpo=adapter:out/dpo@sft", {"adapter": "out/dpo", "base": "sft"}),
    ("dpo=adapter:out/dpo@zoo:smollm2-135m-instruct", {"adapter": "out/dpo", "base": "zoo:smollm2-135m-instruct"}),
    ("q=gguf:m/model.Q4.gguf", {"path": "m/model.Q4.gguf"}),
    ("fast=vllm:m/base", {"path": "m/base", "backend": "vllm"}),
    ("srv=openai:my-model@http://127.0.0.1:8000/v1",
     {"backend": "openai", "model": "my-model", "base_url": "http://127.0.0.1:8000/v1"}),
    ("srv=openai:my-model", {"backend": "openai", "model": "my-model"}),
    ("ol=ollama:llama3@http://gpu-box:11434", {"backend": "ollama", "model": "llama3", "host": "http://gpu-box:11434"}),
    ("ol=ollama:llama3", {"backend": "ollama", "model": "llama3"}),
    ("theirs=responses:answers.jsonl", {"responses": "answers.jsonl"}),
    (" base = zoo:x ", {"path": "zoo:x"}),
])
def test_each_spec_form_maps_onto_model_spec_fields(flag, expected):
    from harness.config import ModelSpec

    name, spec = parse_model_flag(flag)
    assert (name, spec) == (flag.split("=")[0].strip(), expected)
    ModelSpec.model_validate(spec)  # what a config would hold, and valid as one


@pytest.mark.parametrize("flag, words", [
    ("base", ["expected NAME=SPEC", "--model base=zoo:"]),
    ("zoo:smollm2-135m-instruct", ["expected NAME=SPEC", "--model mine=zoo:smollm2-135m-instruct"]),
    ("base=", ["nothing after '='"]),
    ("=zoo:x", ["model name ''"]),
    ("my.model=zoo:x", ["model name 'my.model'"]),
    ("base=zop:smollm2", ["unknown kind 'zop:'", "did you mean 'zoo:'"]),
    ("sft=adaptor:out/sft", ["unknown kind 'adaptor:'", "did you mean 'adapter:'"]),
    ("base=zoo:", ["nothing after 'zoo:'"]),
    ("dpo=adapter:out/dpo@", ["empty part after '@'"]),
    ("srv=openai:@http://x", ["empty part before '@'"]),
    ("q=gguf:m/model.bin", ["'m/model.bin' is not a .gguf file"]),
])
def test_a_malformed_flag_is_one_clear_error(flag, words):
    with pytest.raises(HarnessError) as err:
        parse_model_flag(flag)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"--model {flag!r}")
    for w in words:
        assert w in text, text


def test_a_name_given_twice_is_an_error():
    with pytest.raises(HarnessError, match="model name 'a' is given twice"):
        parse_model_flags(["a=zoo:x", "b=zoo:y", "a=zoo:z"])
    assert list(parse_model_flags(["b=zoo:y", "a=zoo:x"])) == ["b", "a"]  # order kept


def test_a_url_or_an_existing_path_with_a_colon_is_not_a_kind(tmp_path):
    odd = tmp_path / "we:ird"
    odd.mkdir()
    assert parse_model_flag(f"m={odd}") == ("m", {"path": str(odd)})
    assert parse_model_flag("m=http://host/model")[1] == {"path": "http://host/model"}  # resolve's error then


# ---------------------------------------------------------------- the CLI


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "300", "NO_COLOR": "1"})


def _error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_cli_errors_are_one_line_exit_2_and_leave_no_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no harness.yaml: a quick run, never the demo's models
    cases = {
        ("--model", "base=zop:smollm2-135m-instruct", "--tasks", "demo"): ["unknown kind 'zop:'", "did you mean 'zoo:'",
                                                                         "adapter:PATH[@BASE]"],
        ("--model", "base=zoo:smollm2-135m-instruct"): ["nothing to evaluate", "--tasks", "demo-en", "--benchmarks"],
        ("--model", "base=zoo:smollm2-135m-instruct", "--tasks", "deom"): ["unknown task 'deom'",
                                                                         "did you mean 'demo'"],
        ("--model", "base=zoo:no-such-model", "--tasks", "demo-en"): ["no-such-model"],
        ("--model", "base=zoo:smollm2-135m-instruct", "--model", f"sft=adapter:{DEMO / 'sft'}@bsae",
         "--tasks", "demo-en"): ["models.sft.base: 'bsae'", "did you mean 'base'"],
        ("--model", "base=zoo:smollm2-135m-instruct", "--tasks", "demo-en", "--benchmarks", "mmlu-mimi"):
            ["unknown benchmark 'mmlu-mimi'", "mmlu-mini"],
    }
    for args, words in cases.items():
        line = _error_line(_invoke("run", "-q", "-o", str(tmp_path / "out"), *args))
        for w in words:
            assert w in line, (args, line)
        assert not (tmp_path / "out").exists() and not (tmp_path / "reports").exists()


def test_without_a_config_only_the_flag_models_run(tmp_path, monkeypatch):
    """No harness.yaml and --model given: the plan has only that model, no judge, no benchmarks
    (the demo's three models, its judge and its benchmarks stay out)."""
    from harness import api

    monkeypatch.chdir(tmp_path)
    cfg = api._quick_config(None, parse_model_flags(["mine=zoo:smollm2-135m-instruct"]), ["demo-en"], None)
    assert list(cfg.models) == ["mine"] and cfg.tasks == ["demo-en"]
    assert cfg.benchmarks == [] and cfg.judge.backend == "none" and not cfg.gates
    assert Path(cfg.base_dir) == tmp_path  # relative paths in flags are relative to the current folder


def test_with_a_config_the_flag_models_join_it(tmp_path):
    from harness import api

    (tmp_path / "harness.yaml").write_text("models:\n  base: {path: zoo:smollm2-135m-instruct}\n"
                                           "  old: {responses: a.jsonl}\ntasks: [demo-en]\n")
    cfg = api._quick_config(tmp_path / "harness.yaml", parse_model_flags(
        ["new=adapter:x@base", "old=responses:b.jsonl"]), None, None)
    assert list(cfg.models) == ["base", "old", "new"]
    assert cfg.models["old"].responses == "b.jsonl" and cfg.models["new"].base == "base"


def _task(root: Path) -> Path:
    rows = [{"instruction": "Give the antonym of hot.", "input": "", "output": "cold"},
            {"instruction": "What is the capital of France?", "input": "", "output": "Paris"},
            {"instruction": "Say yes.", "input": "", "output": "yes"}]
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [exact_match, length, perplexity]\n"
                                 "generation: {max_new_tokens: 4}\n")
    return root / "t.yaml"


def test_a_quick_run_of_tiny_models_with_a_stacked_adapter(tiny_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = _task(tmp_path)
    result = _invoke("run", "-q", "-n", "2", "--tasks", str(task),
                     "--model", f"base={tiny_models['base']}",
                     "--model", f"sft=adapter:{tiny_models['lora_a']}",
                     "--model", f"dpo=adapter:{tiny_models['lora_on_a']}@sft")
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "reports").iterdir())
    scores = json.loads((run / "scores.json").read_text())
    per_model = scores["groups"]["t"]["models"]
    assert sorted(per_model) == ["base", "dpo", "sft"]
    assert all(per_model[m]["length_chars"]["n"] == 2 for m in per_model)  # -n 2
    ppl = {m: per_model[m]["perplexity"]["value"] for m in per_model}
    assert len(set(ppl.values())) == 3  # three different checkpoints, not one evaluated three times
    chain = (run / "config.yaml").read_text()
    assert "base: sft" in chain


@pytest.mark.slow  # loads SmolLM2-135M (zoo) with the demo's SFT and DPO adapters: ~1 min on 2 cores
def test_a_quick_run_of_the_demo_adapters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke("run", "-q", "-n", "2", "--tasks", "demo-en", "--benchmarks", "none", "--judge", "none",
                     "--model", "base=zoo:smollm2-135m-instruct",
                     "--model", f"sft=adapter:{DEMO / 'sft'}",
                     "--model", f"dpo=adapter:{DEMO / 'dpo'}@sft")
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "reports").iterdir())
    scores = json.loads((run / "scores.json").read_text())
    assert sorted(scores["groups"]["demo-en"]["models"]) == ["base", "dpo", "sft"]
