"""Shared test setup: offline hub, and tiny models built once per session (seconds on a CPU)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Paths of tiny checkpoints:

    - ``base``: a 2-layer random Llama + tokenizer (no pad token, has a chat template)
    - ``lora_a``: a LoRA adapter on ``base`` (its adapter_config names ``base``)
    - ``lora_b``: a second, different LoRA adapter on ``base``
    - ``lora_a_merged``: ``base`` with ``lora_a`` merged in, as a full folder
    - ``lora_on_a``: a LoRA adapter trained on ``lora_a_merged``; its adapter_config names
      the ``lora_a`` adapter folder as its base (a DPO-on-SFT stack)
    """
    import torch
    from peft import PeftModel
    from tinymodels import tiny_base, tiny_lora
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("tiny")
    base = tiny_base(root / "base")
    lora_a = tiny_lora(base, root / "lora_a", seed=1, base_name=str(base))
    lora_b = tiny_lora(base, root / "lora_b", seed=2, base_name=str(base))
    merged = root / "lora_a_merged"
    with torch.no_grad():
        m = AutoModelForCausalLM.from_pretrained(base)
        m = PeftModel.from_pretrained(m, lora_a).merge_and_unload()
        m.save_pretrained(merged)
    AutoTokenizer.from_pretrained(base).save_pretrained(merged)
    lora_on_a = tiny_lora(merged, root / "lora_on_a", seed=3, base_name=str(lora_a))
    return {"base": base, "lora_a": lora_a, "lora_b": lora_b, "lora_a_merged": merged,
            "lora_on_a": lora_on_a}


@pytest.fixture(scope="module")
def fake_judge():
    """Start a fake Ollama / OpenAI-compatible judge server (tests/fake_judge_server.py):
    ``fake_judge(models=[...], responder=fn, latency=s)`` -> the started ``FakeJudgeServer``.
    Every server started stops when the test module ends (stopping one earlier is fine)."""
    from fake_judge_server import FakeJudgeServer

    started: list[FakeJudgeServer] = []

    def start(**kwargs) -> FakeJudgeServer:
        server = FakeJudgeServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_run(tmp_path):
    """``make_run(rel="run", scores=None, **parts)``: a run directory at ``tmp_path / rel``, written by
    ``runs.make_run`` (scores.json, config.yaml, run.json, samples, benchmarks, verdicts, units)."""
    from runs import make_run as _make_run

    def make(rel: str = "run", scores=None, **parts):
        return _make_run(tmp_path / rel, scores, **parts)

    return make
