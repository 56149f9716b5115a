"""harness train: SFT (LoRA, full; Alpaca, messages, prompt/completion rows), DPO on an SFT
adapter, completion-only labels, manifests, data errors, the CLI. Tiny models, a few steps each."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.errors import HarnessError

ALPACA = [
    {"instruction": "What is the capital of France?", "input": "", "output": "The capital of France is Paris."},
    {"instruction": "Give an antonym of hot.", "input": "", "output": "The antonym of hot is cold."},
    {"instruction": "Convert 5 kilometers to meters.", "input": "", "output": "5 kilometers is 5000 meters."},
    {"instruction": "Rewrite the sentence in passive voice.", "input": "The fox jumps over the dog.",
     "output": "The dog is jumped over by the fox."},
    {"instruction": "다음 문장을 존댓말로 바꾸세요.", "input": "오늘 날씨가 좋다.", "output": "오늘 날씨가 좋습니다."},
    {"instruction": "대한민국의 수도는?", "input": "", "output": "대한민국의 수도는 서울입니다."},
]
MESSAGES = [
    {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": "Paris."}]},
    {"messages": [{"role": "user", "content": "Give an antonym of hot."},
                  {"role": "assistant", "content": "cold"}]},
]
PREFS = [
    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "The capital of France is Rome."},
    {"prompt": "Give an antonym of hot.", "chosen": "cold", "rejected": "The antonym of hot is hot."},
    {"prompt": "Convert 5 kilometers to meters.", "chosen": "5000 meters", "rejected": "500 meters, I think."},
    {"prompt": "대한민국의 수도는?", "chosen": "서울", "rejected": "대한민국의 수도는 부산입니다."},
]
FAST = {"max_steps": 3, "batch_size": 4, "eval_steps": 2, "logging_steps": 1, "cpu": True, "max_length": 256}


def _jsonl(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def tt(tmp_path_factory):
    """Tiny base, data files, and the trained checkpoints every test reads."""
    from tinymodels import tiny_base

    from harness.train.dpo import train_dpo
    from harness.train.sft import train_sft

    root = tmp_path_factory.mktemp("train")
    base = tiny_base(root / "base")
    d = root / "data"
    d.mkdir()
    files = {
        "alpaca": _jsonl(d / "alpaca.jsonl", ALPACA * 4),  # 24 rows: split 70/15/15
        "alpaca_val": _jsonl(d / "alpaca_val.jsonl", ALPACA[:2]),
        "messages": _jsonl(d / "messages.jsonl", MESSAGES * 3),
        "pc": _jsonl(d / "pc.jsonl", [{"prompt": f"Q: {r['instruction']}\nA:", "completion": " " + r["output"]}
                                      for r in ALPACA]),
        "prefs": _jsonl(d / "prefs.jsonl", PREFS * 2),
        "prefs_val": _jsonl(d / "prefs_val.jsonl", PREFS[:2]),
    }
    out = {"root": root, "base": base, **{k: Path(v) for k, v in files.items()}}
    out["sft"] = train_sft(model=str(base), data=files["alpaca"], output=str(root / "run" / "sft"), split="70/15/15",
                           prompt_format="alpaca", lora=_lora(), **FAST)
    out["dpo"] = train_dpo(data=files["prefs"], val_data=files["prefs_val"], output=str(root / "run" / "dpo"),
                           sft_adapter=str(out["sft"]), lora=_lora(), **FAST)
    return out


def _lora():
    from harness.train.common import LoraOptions

    return LoraOptions(r=4, alpha=8, dropout=0.0, target_modules="q_proj,v_proj")


def _batch(trainer, n: int):
    rows = [trainer.train_dataset[i] for i in range(n)]
    return rows, trainer.data_collator(rows)


def _sft_opts(tt, tmp_path, **kw):
    from harness.train.sft import SFTOptions

    base = dict(model=str(tt["base"]), data=str(tt["alpaca"]), output=str(tmp_path / "out"), split=None,
                lora=_lora(), **FAST)
    base.update(kw)
    return SFTOptions(**base)


# ----------------------------------------------------------------------------- labels

@pytest.mark.slow  # trains (tiny model, CPU)
def test_labels_are_exactly_the_response_tokens(tt, tmp_path):
    from harness.train.sft import build_sft_trainer

    trainer, _ = build_sft_trainer(_sft_opts(tt, tmp_path, prompt_format="alpaca", max_length=512))
    tok = trainer.processing_class
    assert len(trainer.train_dataset) == 24  # nothing dropped by truncation
    _, batch = _batch(trainer, 6)
    for i in range(6):
        labels = batch["labels"][i]
        got = labels[labels != -100].tolist()
        want = tok(ALPACA[i]["output"], add_special_tokens=False).input_ids + [tok.eos_token_id]
        assert got == want, (tok.decode(got), ALPACA[i]["output"])
        # and they sit at the end of the real tokens, right after the prompt
        ids = batch["input_ids"][i][batch["attention_mask"][i] == 1].tolist()
        assert ids[-len(want):] == want
        assert "### Response:" in tok.decode(ids[:-len(want)])


@pytest.mark.slow  # trains (tiny model, CPU)
def test_train_on_prompt_unmasks_the_prompt(tt, tmp_path):
    from harness.train.sft import build_sft_trainer

    trainer, _ = build_sft_trainer(_sft_opts(tt, tmp_path, prompt_format="alpaca", train_on_prompt=True))
    _, batch = _batch(trainer, 4)
    real = batch["attention_mask"] == 1
    assert ((batch["labels"] != -100) == real).all()
    assert (batch["labels"][real] == batch["input_ids"][real]).all()


@pytest.mark.slow  # trains (tiny model, CPU)
def test_messages_rows_train_on_the_last_assistant_turn_only(tt, tmp_path):
    from harness.train.sft import build_sft_trainer, train_sft

    opts = _sft_opts(tt, tmp_path, data=str(tt["messages"]))
    trainer, info = build_sft_trainer(opts)
    assert info["data"]["format"] == "messages"
    tok = trainer.processing_class
    _, batch = _batch(trainer, 2)
    for i, row in enumerate(MESSAGES):
        labels = batch["labels"][i]
        text = tok.decode(labels[labels != -100].tolist())
        assert text == row["messages"][-1]["content"] + "</s>\n"  # the tiny chat template's assistant turn
    out = train_sft(opts)
    man = json.loads((out / "harness-train.json").read_text())
    assert man["data"]["format"] == "messages" and man["steps"] == 3


@pytest.mark.slow  # trains (tiny model, CPU)
def test_prompt_completion_rows(tt, tmp_path):
    from harness.train.sft import build_sft_trainer

    trainer, info = build_sft_trainer(_sft_opts(tt, tmp_path, data=str(tt["pc"])))
    assert info["data"]["format"] == "prompt-completion"
    tok = trainer.processing_class
    _, batch = _batch(trainer, 2)
    labels = batch["labels"][0]
    assert tok.decode(labels[labels != -100].tolist()) == " " + ALPACA[0]["output"] + tok.eos_token
    trainer.train()
    assert trainer.state.global_step == 3


# ----------------------------------------------------------------------------- SFT LoRA + manifest

@pytest.mark.slow  # trains (tiny model, CPU)
def test_sft_manifest_is_complete(tt):
    from harness.models.resolve import fingerprint
    from harness.train.data import file_sha256

    out = tt["sft"]
    man = json.loads((out / "harness-train.json").read_text())
    assert man["kind"] == "sft"
    assert man["base"]["ref"] == str(Path(tt["base"]).resolve()) and len(man["base"]["sha256"]) == 16
    assert man["base_fingerprint"] == fingerprint(tt["base"])
    data = man["data"]
    assert data["format"] == "alpaca" and data["train"] == str(tt["alpaca"])
    assert data["train_sha256"] == file_sha256(tt["alpaca"])
    assert data["split"]["ratios"] == "70/15/15" and data["split"]["seed"] == 0
    counts = {k: data["split"][k] for k in ("train", "val", "test")}
    assert sum(counts.values()) == 24 and all(v >= 1 for v in counts.values())
    hp = man["hyperparameters"]
    for key in ("method", "learning_rate", "batch_size", "max_length", "epochs", "max_steps", "train_on_prompt",
                "seed", "lora", "prompt_format", "template_hash"):
        assert key in hp
    assert hp["lora"] == {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "q_proj,v_proj"}
    assert hp["prompt_format"] == "alpaca"
    assert {"torch", "transformers", "peft", "trl"} <= set(man["versions"])
    assert any("loss" in e for e in man["log"]) and any("eval_loss" in e for e in man["log"])
    assert man["wall_time_s"] > 0 and man["device"].startswith("cpu") and man["steps"] == 3
    assert not (out / "trainer").exists()
    # the split files hold exactly the rows of the data file, once each
    parts = {k: [json.loads(x) for x in (out / "data" / f"{k}.jsonl").read_text().splitlines()]
             for k in counts}
    assert {k: len(v) for k, v in parts.items()} == counts
    assert sorted(json.dumps(r, sort_keys=True) for p in parts.values() for r in p) == \
        sorted(json.dumps(r, sort_keys=True) for r in ALPACA * 4)
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(Path(tt["base"]).resolve())


@pytest.mark.slow  # trains (tiny model, CPU)
def test_val_data_is_recorded_and_no_split_is_written(tt, tmp_path):
    from harness.train.data import file_sha256
    from harness.train.sft import train_sft

    out = train_sft(_sft_opts(tt, tmp_path, val_data=str(tt["alpaca_val"]), split="80/10/10", max_steps=2))
    man = json.loads((out / "harness-train.json").read_text())
    assert man["data"]["val"] == str(tt["alpaca_val"])
    assert man["data"]["val_sha256"] == file_sha256(tt["alpaca_val"])
    assert man["data"]["rows"] == {"train": 24, "val": 2}
    assert "split" not in man["data"] and not (out / "data").exists()


@pytest.mark.slow  # trains (tiny model, CPU)
def test_full_sft_saves_a_loadable_model(tt, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from harness.train.sft import train_sft

    out = train_sft(_sft_opts(tt, tmp_path, method="full", max_steps=2, learning_rate=1e-2))
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    tuned = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tt["base"])
    w0 = base.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(tuned.model.layers[0].self_attn.q_proj.weight, w0)
    assert json.loads((out / "harness-train.json").read_text())["hyperparameters"]["method"] == "full"


# ----------------------------------------------------------------------------- DPO + loading back

@pytest.mark.slow  # trains (tiny model, CPU)
def test_dpo_adapter_names_the_sft_adapter_and_manifest(tt):
    from harness.models.resolve import fingerprint

    out = tt["dpo"]
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "../sft"
    man = json.loads((out / "harness-train.json").read_text())
    assert man["kind"] == "dpo" and man["base"]["sft_adapter"] == "../sft"
    assert man["base"]["ref"] == str(Path(tt["base"]).resolve())
    assert man["base_fingerprint"] == fingerprint(tt["sft"])
    assert man["data"]["rows"] == {"train": 8, "val": 2} and man["data"]["val_sha256"]
    assert man["hyperparameters"]["beta"] == 0.1 and man["hyperparameters"]["loss_type"] == "sigmoid"
    assert man["hyperparameters"]["prompt_format"] == "alpaca"  # inherited from the SFT manifest
    assert any("loss" in e for e in man["log"]) and any("eval_loss" in e for e in man["log"])
    assert not (out / "ref").exists() and not (out / "trainer").exists()


@pytest.mark.slow  # trains (tiny model, CPU)
def test_adapters_load_back_through_harness_specs(tt):
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.resolve import resolve_models

    specs = {"base": ModelSpec(path=str(tt["base"]), prompt_format="alpaca"),
             "sft": ModelSpec(adapter="run/sft", prompt_format="alpaca"),
             "dpo": ModelSpec(adapter="run/dpo", prompt_format="alpaca")}
    resolved = resolve_models(specs, tt["root"])
    assert resolved["dpo"].adapters == [str(tt["sft"]), str(tt["dpo"])]
    assert resolved["sft"].root == resolved["dpo"].root == str(Path(tt["base"]).resolve())
    assert not resolved["sft"].warnings and not resolved["dpo"].warnings  # base fingerprints match
    pool = ModelPool(resolved, device="cpu", dtype="float32")
    req = [("### Response:\n", "The capital of France is Paris.")]
    lls = {n: pool.engine(n).loglikelihood(req)[0][0] for n in ("base", "sft", "dpo")}
    assert len({round(v, 5) for v in lls.values()}) == 3, lls


@pytest.mark.slow  # trains (tiny model, CPU)
def test_dpo_from_a_base_model(tt, tmp_path):
    from harness.train.dpo import train_dpo

    out = train_dpo(data=str(tt["prefs"]), output=str(tmp_path / "dpo"), model=str(tt["base"]),
                    lora=_lora(), **{**FAST, "max_steps": 1})
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(Path(tt["base"]).resolve())


@pytest.mark.slow  # trains (tiny model, CPU)
def test_preference_accuracy_counts_the_higher_likelihood(tt):
    from harness.models.prompts import get_format
    from harness.train.common import load_causal_lm, load_tokenizer
    from harness.train.evaluate import preference_accuracy

    model, tok = load_causal_lm(str(tt["base"])), load_tokenizer(str(tt["base"]))
    fmt = get_format("alpaca", tok)
    long = "The capital of France is Paris and it is a city. " * 4
    short_first = [{"prompt": "What is the capital of France?", "chosen": "Paris", "rejected": long}]
    assert preference_accuracy(model, tok, short_first * 2, fmt) == 1.0
    swapped = [{"prompt": r["prompt"], "chosen": r["rejected"], "rejected": r["chosen"]} for r in short_first]
    assert preference_accuracy(model, tok, swapped, fmt) == 0.0
    same = [{"prompt": "x", "chosen": "cold", "rejected": "cold"}]
    assert preference_accuracy(model, tok, same, fmt) == 0.0  # ties do not count


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("content, message", [
    ('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n', ":2: missing field 'output'"),
    ('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n', ":2: not valid JSON"),
    ("", "the data file is empty"),
    (('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
      '{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yo"}]}\n'),
     ":2: the last message must be the assistant's answer"),
])
@pytest.mark.slow  # trains (tiny model, CPU)
def test_bad_data_names_file_and_line(tt, tmp_path, content, message):
    from harness.train.sft import train_sft

    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(HarnessError) as err:
        train_sft(_sft_opts(tt, tmp_path, data=str(bad)))
    assert str(bad) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.slow  # trains (tiny model, CPU)
def test_bad_preference_row(tt, tmp_path):
    from harness.train.dpo import train_dpo

    bad = tmp_path / "p.jsonl"
    _jsonl(bad, [PREFS[0], {"prompt": "x", "chosen": "y"}])
    with pytest.raises(HarnessError, match=r"p\.jsonl:2: missing field 'rejected'"):
        train_dpo(data=str(bad), output=str(tmp_path / "o"), sft_adapter=str(tt["sft"]))


@pytest.mark.slow  # trains (tiny model, CPU)
def test_qlora_on_cpu_says_it_needs_cuda(tt, tmp_path):
    import torch

    from harness.train.sft import train_sft

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(HarnessError, match="qlora needs a CUDA GPU"):
        train_sft(_sft_opts(tt, tmp_path, method="qlora"))


@pytest.mark.slow  # trains (tiny model, CPU)
def test_cli_bad_data_exits_2_with_one_line(tt, tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a"}\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["train", "sft", "--model", str(tt["base"]), "--data", str(bad),
                                   "--output", str(tmp_path / "o"), "--quiet"], env={"COLUMNS": "400"})
    assert res.exit_code == 2, res.output
    assert f"{bad}:1: missing field 'output'" in res.output.replace("\n", "")


@pytest.mark.slow  # trains (tiny model, CPU)
def test_cli_trains_and_prints_where_things_went(tt, tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    out = tmp_path / "cli-sft"
    res = CliRunner().invoke(app, ["train", "sft", "-m", str(tt["base"]), "-d", str(tt["alpaca"]), "-o", str(out),
                                   "--max-steps", "2", "--batch-size", "4", "--lora-r", "2",
                                   "--lora-target-modules", "q_proj", "--cpu", "--quiet"],
                             env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert f"SFT checkpoint: {out}" in res.output and str(out / "harness-train.json") in res.output
    assert "split files:" in res.output
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 2 and cfg["target_modules"] == ["q_proj"]


# ----------------------------------------------------------------------------- CLI help

def _cli_params(name):
    import typer.main

    from harness.cli import app

    group = typer.main.get_command(app)
    return group.commands["train"].commands[name]


@pytest.mark.parametrize("name", ["sft", "dpo"])
def test_train_help_lists_every_option_with_its_default(name):
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.train.common import LoraOptions
    from harness.train.dpo import DPOOptions
    from harness.train.sft import SFTOptions

    res = CliRunner().invoke(app, ["train", name, "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0
    lines = res.output.splitlines()
    cmd = _cli_params(name)
    params = {p.name: p for p in cmd.params if p.name != "help"}
    for p in params.values():
        line = next((ln for ln in lines if f" {p.opts[0]} " in ln or f" {p.opts[0]}," in ln), None)
        assert line is not None, f"{p.opts[0]} missing from --help"
        assert "[default:" in line or "[required]" in line, line
    # every option of the dataclass is exposed, with the same default
    opts_cls = SFTOptions if name == "sft" else DPOOptions
    for f in dataclasses.fields(opts_cls):
        if f.name == "lora":
            for lf in dataclasses.fields(LoraOptions):
                assert params[f"lora_{lf.name if lf.name != 'target_modules' else 'target_modules'}"].default \
                    == lf.default
            continue
        assert f.name in params, f"--{f.name.replace('_', '-')} is not a CLI option"
        if f.default is not dataclasses.MISSING and f.name not in ("split", "output", "sft_adapter"):
            assert params[f.name].default == f.default, f.name
    if name == "sft":
        assert params["split"].default == SFTOptions.split
        for opt in ("--method", "--prompt-format", "--split", "--train-on-prompt", "--early-stopping-patience",
                    "--max-length", "--cpu", "--lora-dropout"):
            assert opt in res.output
    else:
        for opt in ("--beta", "--loss-type", "--sft-adapter", "--max-length", "--cpu"):
            assert opt in res.output


def test_demo_options_read_the_one_constant(tmp_path):
    from harness.train.demo import DEMO, demo_options

    sft, dpo = demo_options(tmp_path)
    assert sft.model == DEMO["model"] and sft.split is None
    assert sft.data.endswith("sft_train.jsonl") and sft.val_data.endswith("sft_val.jsonl")
    assert sft.learning_rate == DEMO["sft"]["learning_rate"] and sft.lora.r == DEMO["sft"]["lora"]["r"]
    assert sft.max_length == 256 and dpo.max_length == 256
    assert dpo.sft_adapter == str(tmp_path / "sft") and dpo.output == str(tmp_path / "dpo")
    assert dpo.beta == DEMO["dpo"]["beta"] and dpo.val_data.endswith("dpo_val.jsonl")
    assert DEMO["sft"]["lora"] == {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}


# ----------------------------------------------------------------------------- report_to


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from tinymodels import tiny_base

    root = tmp_path_factory.mktemp("report_to")
    return {"base": str(tiny_base(root / "base")), "alpaca": _jsonl(root / "a.jsonl", ALPACA * 2),
            "prefs": _jsonl(root / "p.jsonl", PREFS * 2), "root": root}


def test_report_to_reaches_the_trl_config(tiny_setup, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from transformers.integrations import MLflowCallback, WandbCallback

    from harness.train.dpo import DPOOptions, build_dpo_trainer
    from harness.train.sft import SFTOptions, build_sft_trainer

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("WANDB_MODE", "")  # (recorded, so the value report_to sets is undone after the test)
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    sft = SFTOptions(model=tiny_setup["base"], data=tiny_setup["alpaca"], output=str(tmp_path / "sft"), split=None,
                     lora=_lora(), report_to="mlflow", **FAST)
    trainer, _ = build_sft_trainer(sft)
    assert trainer.args.report_to == ["mlflow"]
    assert any(isinstance(c, MLflowCallback) for c in trainer.callback_handler.callbacks)
    dpo = DPOOptions(data=tiny_setup["prefs"], output=str(tmp_path / "dpo"), model=tiny_setup["base"], lora=_lora(),
                     report_to="wandb,mlflow", **FAST)
    trainer, _ = build_dpo_trainer(dpo)
    assert trainer.args.report_to == ["wandb", "mlflow"]
    assert any(isinstance(c, WandbCallback) for c in trainer.callback_handler.callbacks)
    import os

    assert os.environ["WANDB_MODE"] == "offline"  # no API key: nothing leaves the machine
    plain, _ = build_sft_trainer(dataclasses.replace(sft, report_to="none", output=str(tmp_path / "plain")))
    assert not any(isinstance(c, (MLflowCallback, WandbCallback)) for c in plain.callback_handler.callbacks)


def test_bad_report_to_fails_before_the_model_loads(tmp_path, monkeypatch):
    import importlib.util

    from harness.train.sft import SFTOptions, build_sft_trainer

    opts = SFTOptions(model=str(tmp_path / "no-such-model"), data=str(tmp_path / "no.jsonl"), output=str(tmp_path / "o"),
                      report_to="comet")
    with pytest.raises(HarnessError, match="--report-to 'comet'"):
        build_sft_trainer(opts)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    with pytest.raises(HarnessError, match="wandb package is not installed") as err:
        build_sft_trainer(dataclasses.replace(opts, report_to="wandb"))
    assert "pip install" in err.value.fix
