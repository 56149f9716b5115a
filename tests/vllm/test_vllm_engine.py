"""VLLMEngine against the transformers engine (the model pool's HFEngine) on tiny random models:
the same greedy texts, log-likelihoods within TOL (float32), for the base, a LoRA adapter, a
stacked adapter (the combined path) and a modules_to_save adapter (the merged path).

One vLLM group (base + adapters on one engine, plus the merged checkpoint's engine) is started
for the module; it runs in-process on CPU, a few seconds per start."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.backends.lora_chain import combine_lora_chain, lora_rank_limit, serve_chain
from harness.errors import HarnessError

pytestmark = pytest.mark.slow

TOL = 1e-4          # max |log p sum| difference, float32 (measured ~1e-5 here)
OPTIONS = {"kv_cache_space_gb": 1, "enforce_eager": True}
MODELS = ["base", "sft", "other", "dpo", "mts"]
ON_ROOT = MODELS[:4]   # served by the shared base engine; "mts" has an engine of its own (tested last)
PROMPTS = ["The quick brown fox", "대한민국의 수도는", "What is the capital of France?",
           "Convert 5 kilometers to meters.", "Give an antonym of hot."]
PAIRS = [("The capital of France is", " Paris."), ("Answer with A, B, C or D. Answer:", " A"),
         ("Answer with A, B, C or D. Answer:", " B"), ("", "The quick brown fox"),
         ("대한민국의 수도는 ", "서울입니다."), ("5 kilometers is", " 5000 meters.")]
TEXTS = ["The quick brown fox jumps over the lazy dog. " * 6, "대한민국의 수도는 서울입니다. " * 5, "short"]


def _mts_adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter that also trains (and saves) the norm layers: vLLM cannot serve it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(5)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                                      modules_to_save=["norm"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "modules_to_save" in name:
                p.mul_(1.5)
            elif "lora_" in name:
                p.mul_(3.0)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Llama with head_dim 32 (vLLM's CPU attention needs >= 32) and its adapters."""
    import torch
    from peft import PeftModel
    from tinymodels import tiny_base, tiny_lora
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("vllm-tiny")
    base = tiny_base(root / "base", hidden=128)
    lora_a = tiny_lora(base, root / "lora_a", seed=1, base_name=str(base))
    lora_b = tiny_lora(base, root / "lora_b", seed=2, base_name=str(base))
    merged = root / "lora_a_merged"
    with torch.no_grad():
        m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), lora_a).merge_and_unload()
        m.save_pretrained(merged)
    AutoTokenizer.from_pretrained(base).save_pretrained(merged)
    lora_on_a = tiny_lora(merged, root / "lora_on_a", seed=3, base_name=str(lora_a))
    mts = _mts_adapter(base, root / "mts")
    return {"root": root, "base": base, "lora_a": lora_a, "lora_b": lora_b, "lora_on_a": lora_on_a, "mts": mts}


@pytest.fixture(scope="module")
def pool(tiny):
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.resolve import resolve_models

    specs = {"base": {"path": str(tiny["base"])}, "sft": {"adapter": str(tiny["lora_a"])},
             "other": {"adapter": str(tiny["lora_b"])}, "dpo": {"adapter": str(tiny["lora_on_a"])},
             "mts": {"adapter": str(tiny["mts"])}}
    res = resolve_models({k: ModelSpec(**v) for k, v in specs.items()}, tiny["root"])
    return ModelPool(res, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def engines(pool, tiny):
    from harness.backends.vllm import close_vllm_group, open_vllm_group

    members = {n: list(pool.resolved[n].adapters) for n in MODELS}
    root = pool.resolved["base"].root
    got = open_vllm_group(root, members, pool.tokenizer("base"), dtype="float32", options=OPTIONS,
                          cache_dir=tiny["root"] / "cache")
    yield got
    close_vllm_group(got)


@pytest.fixture(scope="module")
def hf(pool):
    return {n: pool.engine(n) for n in MODELS}


def test_paths_and_info(engines, pool):
    assert pool.resolved["dpo"].adapters and len(pool.resolved["dpo"].adapters) == 2  # a real stack
    paths = {n: e.info.details["path"] for n, e in engines.items()}
    assert paths == {"base": "base", "sft": "lora", "other": "lora", "dpo": "lora-combined", "mts": "merged"}
    d = engines["dpo"].info.details
    assert engines["dpo"].info.backend == "vllm" and engines["dpo"].info.version
    assert d["max_lora_rank"] == 8 and d["prefix_caching"] is False and d["seed"] == 0
    assert any("one per generate() call" in w for w in d["workarounds"])  # CPU + LoRA
    assert "modules_to_save" in engines["mts"].info.details["reason"]
    assert engines["mts"].info.details["max_lora_rank"] is None  # its own engine, no LoRA
    assert engines["base"].group is engines["mts"].group


def _same_generations(engines, hf, pool, name):
    fmt = pool.format(name)
    want = hf[name].generate(PROMPTS, fmt=fmt, max_new_tokens=16)
    got = engines[name].generate(PROMPTS, fmt=fmt, max_new_tokens=16)
    assert [(g.raw, g.text, g.n_tokens, g.finish) for g in got] == \
        [(g.raw, g.text, g.n_tokens, g.finish) for g in want]
    # stop strings: the caller's, cut the same way
    raw = "".join(g.raw for g in want)
    stop = next(([raw[i:i + 2]] for i in range(2, len(raw) - 1)
                 if "\ufffd" not in raw[i:i + 2] and raw[i:i + 2].strip()), ["e"])
    want = hf[name].generate(PROMPTS[:2], fmt=None, max_new_tokens=12, stop=stop)
    got = engines[name].generate(PROMPTS[:2], fmt=None, max_new_tokens=12, stop=stop)
    assert [(g.raw, g.text, g.n_tokens, g.finish) for g in got] == \
        [(g.raw, g.text, g.n_tokens, g.finish) for g in want]


def _same_scores(engines, hf, name):
    want = hf[name].loglikelihood(PAIRS)
    seen: list[tuple[int, int]] = []
    got = engines[name].loglikelihood(PAIRS, progress=lambda i, n: seen.append((i, n)))
    assert seen and seen[-1] == (len(PAIRS), len(PAIRS))
    diff = max(abs(a - b) for (a, _), (b, _) in zip(got, want))
    assert diff < TOL
    assert [g for _, g in got] == [g for _, g in want]
    diffs = [diff]
    for (a, b) in [(engines[name].token_nll(PROMPTS, [p[1] for p in PAIRS[:5]]),
                    hf[name].token_nll(PROMPTS, [p[1] for p in PAIRS[:5]])),
                   (engines[name].rolling_nll(TEXTS, max_length=16, stride=8),
                    hf[name].rolling_nll(TEXTS, max_length=16, stride=8))]:
        assert [(x.n_tokens, x.n_bytes) for x in a] == [(x.n_tokens, x.n_bytes) for x in b]
        diffs.append(max(abs(x.nll_sum - y.nll_sum) for x, y in zip(a, b)))
        assert diffs[-1] < TOL
    print(f"\n{name}: max |diff| loglikelihood {diffs[0]:.1e}, token_nll {diffs[1]:.1e}, rolling_nll {diffs[2]:.1e}")


@pytest.mark.parametrize("name", ON_ROOT)
def test_greedy_generation_equals_transformers(engines, hf, pool, name):
    _same_generations(engines, hf, pool, name)


@pytest.mark.parametrize("name", ON_ROOT)
def test_loglikelihoods_equal_transformers(engines, hf, name):
    _same_scores(engines, hf, name)


def test_adapters_are_isolated(engines, hf):
    """Each model keeps its own numbers whatever ran before it, and two adapters in one vLLM call
    give each its own numbers."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    first = {n: engines[n].loglikelihood(PAIRS[:2]) for n in ["sft", "other", "dpo", "base"]}
    assert len({tuple(v) for v in first.values()}) == 4  # the adapters really change the numbers
    for n in ["other", "base", "dpo", "sft"]:
        again = engines[n].loglikelihood(PAIRS[:2])
        assert max(abs(a - b) for (a, _), (b, _) in zip(again, first[n])) < 1e-6, n
    # one generate() call with both adapters (generation is batched even on CPU with LoRA)
    ids = engines["sft"]._encode(PROMPTS[0])
    llm = engines["sft"].group.llm(engines["sft"].served.checkpoint)
    outs = llm.generate([TokensPrompt(prompt_token_ids=ids)] * 2, SamplingParams(temperature=0, max_tokens=10),
                        lora_request=[engines["sft"].lora, engines["other"].lora], use_tqdm=False)
    for out, name in zip(outs, ["sft", "other"]):
        want = hf[name].generate([PROMPTS[0]], max_new_tokens=10)[0]
        got = engines[name]._to_generation(list(out.outputs[0].token_ids), fmt=None, stops=[],
                                           eos_ids=engines[name]._eos_ids(), max_new_tokens=10)
        assert got.raw == want.raw, name


def test_combined_adapter_is_cached_and_reused(engines, pool, tiny):
    from harness.backends.vllm import close_vllm_group, open_vllm_group

    combined = Path(engines["dpo"].served.adapter)
    stamp = (combined / ".complete").stat().st_mtime_ns
    again = open_vllm_group(pool.resolved["base"].root, {"dpo": list(pool.resolved["dpo"].adapters)},
                            pool.tokenizer("base"), dtype="auto", options=OPTIONS, cache_dir=tiny["root"] / "cache")
    try:
        assert again["dpo"].info.details["dtype"] == "float32"   # "auto" as transformers reads it on CPU
        assert again["dpo"].served.adapter == str(combined)
        assert (combined / ".complete").stat().st_mtime_ns == stamp   # not rebuilt
        got, want = again["dpo"].loglikelihood(PAIRS[:2]), engines["dpo"].loglikelihood(PAIRS[:2])
        assert max(abs(a - b) for (a, _), (b, _) in zip(got, want)) < 1e-6
    finally:
        close_vllm_group(again)
    assert again["dpo"].group.live is None


def test_combination_equals_peft_cat(tiny, tmp_path):
    """Our tensor-level combination is PEFT's add_weighted_adapter(..., "cat") on the same chain."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    chain = [str(tiny["lora_a"]), str(tiny["lora_on_a"])]
    combine_lora_chain(chain, tmp_path)
    ours = load_file(str(tmp_path / "adapter_model.safetensors"))
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny["base"]), chain[0], adapter_name="a")
    peft.load_adapter(chain[1], adapter_name="b")
    peft.add_weighted_adapter(["a", "b"], [1, 1], "ab", combination_type="cat")
    peft.save_pretrained(tmp_path / "peft", selected_adapters=["ab"])
    theirs = load_file(str(tmp_path / "peft" / "ab" / "adapter_model.safetensors"))
    their_cfg = json.loads((tmp_path / "peft" / "ab" / "adapter_config.json").read_text())
    assert set(ours) == set(theirs)
    assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) < 1e-6
    assert (cfg["r"], cfg["lora_alpha"]) == (their_cfg["r"], their_cfg["lora_alpha"]) == (8, 8)
    assert torch.count_nonzero(ours[next(iter(ours))]) > 0


def test_serving_decisions_and_bad_options(tiny, pool, tmp_path, monkeypatch):
    from harness.backends.vllm import check_options, open_vllm_group

    tok = pool.tokenizer("base")
    s = serve_chain(str(tiny["base"]), [str(tiny["lora_a"])], tok, cache_dir=tmp_path, root_vocab=len(tok))
    assert (s.path, s.adapter, s.rank) == ("lora", str(tiny["lora_a"]), 4)
    s = serve_chain(str(tiny["base"]), [str(tiny["lora_a"])], tok, cache_dir=tmp_path, root_vocab=len(tok) - 1)
    assert s.path == "merged" and "base vocabulary" in s.reason   # a tokenizer bigger than the base
    assert [lora_rank_limit(r) for r in (1, 8, 9, 300, 321, 512)] == [8, 8, 16, 320, 512, 512]
    with pytest.raises(HarnessError, match="larger than vLLM's largest"):
        lora_rank_limit(513)
    with pytest.raises(HarnessError, match=r"vllm\.gpu_memory_utilisation: unknown option \(did you mean "
                                           r"'gpu_memory_utilization'\?\)\. Use one of: "):
        check_options({"gpu_memory_utilisation": 0.5})
    with pytest.raises(HarnessError, match=r"vllm\.enforce_eager: 'yes' is not true or false"):
        check_options({"enforce_eager": "yes"})
    with pytest.raises(HarnessError, match=r"vllm\.max_model_len: 0 is not a positive integer"):
        check_options({"max_model_len": 0})
    assert check_options({"kv_cache_space_gb": 2, "enforce_eager": False}) == {"kv_cache_space_gb": 2,
                                                                                "enforce_eager": False}
    monkeypatch.setitem(sys.modules, "vllm", None)   # as where vllm is not installed
    with pytest.raises(HarnessError, match=r"backend: vllm needs the vllm package .*Run `make install-vllm`"):
        open_vllm_group(str(tiny["base"]), {"base": []}, tok, cache_dir=tmp_path)


def test_merged_path_equals_transformers(engines, hf, pool):
    """The modules_to_save adapter: a merged checkpoint on an engine of its own (vLLM switches to
    it, closing the base engine) against the pool's live adapter."""
    _same_generations(engines, hf, pool, "mts")
    _same_scores(engines, hf, "mts")
    assert engines["mts"].group.live[0] == engines["mts"].served.checkpoint
