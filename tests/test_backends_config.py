"""The `backend:` field of a model: validation, resolution, run.json/report labels, parity figures.

The backends themselves are tested in tests/test_served_backends.py (a scripted server) and
tests/vllm/ (vLLM on CPU, in its own virtualenv)."""

from __future__ import annotations

import pytest

from harness.config import config_from_dict
from harness.engine import NLL
from harness.errors import HarnessError
from harness.models.resolve import resolve_models
from harness.report.view import build_warnings, engine_label, parity_label
from harness.stages.parity import compare


def _cfg(models: dict, **extra):
    return config_from_dict({"models": models, "tasks": [], **extra})


@pytest.mark.parametrize("spec, needle", [
    ({"backend": "openai", "path": "x"}, "named by 'model'"),
    ({"backend": "openai"}, "needs 'model'"),
    ({"backend": "ollama", "model": "m", "base_url": "http://x"}, "Ollama takes 'host'"),
    ({"backend": "openai", "model": "m", "host": "http://x"}, "takes 'base_url'"),
    ({"path": "x", "model": "m"}, "only applies to a served model"),
    ({"responses": "a.jsonl", "backend": "vllm"}, "not served by a backend"),
    ({"path": "x", "vllm": {"max_model_len": 512}}, "only with backend: vllm"),
    ({"path": "x", "backend": "vllm", "vllm": {"gpu_mem_utilization": 0.5}}, "did you mean 'gpu_memory_utilization'"),
    ({"path": "x", "backend": "vllm", "vllm": {"max_model_len": 0}}, "positive integer"),
    ({"path": "x", "backend": "vllm", "load_in_4bit": True}, "use backend: hf"),
    ({"path": "x", "backend": "vlm"}, "backend"),
])
def test_backend_fields_are_validated(spec, needle):
    with pytest.raises(HarnessError) as info:
        _cfg({"m": spec})
    assert needle in str(info.value)
    assert "\n" not in str(info.value).strip() or "models.m" in str(info.value)


def test_served_models_resolve_without_weights(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    cfg = _cfg({"a": {"backend": "openai", "model": "llama3", "base_url": "http://127.0.0.1:8000/v1",
                      "api_key": "sk-secret"},
                "b": {"backend": "ollama", "model": "llama3:8b"}})
    r = resolve_models(cfg.models)
    assert r["a"].kind == "served" and r["a"].root is None and r["a"].server["base_url"] == "http://127.0.0.1:8000/v1"
    assert r["b"].server["host"] == "http://127.0.0.1:9"
    d = r["a"].describe()
    assert d["backend"] == "openai" and d["template"] == "server-chat" and "api_key" not in d
    # the key never reaches a run directory's config snapshot
    assert cfg.snapshot()["models"]["a"]["api_key"] == "***"
    assert cfg.models["a"].api_key == "sk-secret"


def test_adapter_on_a_served_model_is_refused(tmp_path, tiny_models):
    cfg = config_from_dict({"models": {"srv": {"backend": "openai", "model": "m"},
                                       "sft": {"adapter": str(tiny_models["lora_a"]), "base": "srv"}}, "tasks": []})
    with pytest.raises(HarnessError, match="served model"):
        resolve_models(cfg.models)


def test_parity_figures():
    texts = ["a", "b", "c", "d"]
    mine = [NLL(1.0, 4, 4), NLL(2.0, 2, 2), NLL(0.5, 1, 1), NLL(3.0, 3, 3)]
    same = compare(texts, texts, mine, [NLL(x.nll_sum + 1e-6, x.n_tokens, x.n_bytes) for x in mine], 0.05, 0.75)
    assert same["ok"] and same["greedy_agree"] == 4 and same["logprob_max_abs_diff_per_token"] == pytest.approx(1e-6)
    off = compare(texts, ["a", "x", "y", "d"], mine, [NLL(1.4, 4, 4), NLL(2.0, 2, 2), NLL(0.5, 1, 1),
                                                       NLL(3.0, 2, 3)], 0.05, 0.75)
    assert not off["ok"] and off["greedy_agreement"] == 0.5
    assert off["logprob_max_abs_diff_per_token"] == pytest.approx(0.1)
    assert off["token_count_mismatches"] == 1 and len(off["problems"]) == 3
    info = {"m": {"engine": {"backend": "vllm", "version": "0.32.0", "path": "lora-combined"},
                  "parity": {**off, "task": "demo-en"}}}
    assert engine_label(info["m"]) == "vllm 0.32.0 (lora-combined)"
    assert parity_label(info["m"]).startswith("2/4 greedy") and parity_label(info["m"]).endswith("⚠")
    warnings = build_warnings(["m"], info, {}, {})
    assert any("disagrees with transformers" in w and "demo-en" in w for w in warnings)
    assert parity_label({}) == "–" and engine_label({}) == "hf"
