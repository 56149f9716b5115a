from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.config import ModelSpec
from harness.errors import HarnessError
from harness.models.pool import ModelPool
from harness.models.resolve import fingerprint, resolve_models


def _specs(**kw) -> dict[str, ModelSpec]:
    return {k: ModelSpec(**v) for k, v in kw.items()}


def _logits(model, ids):
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0]


def _fresh(path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


IDS = [5, 17, 33, 90, 120, 7, 250, 3, 44]


# ------------------------------------------------------------------ resolve (no weights)

def test_resolve_full_adapter_and_stack(tiny_models, tmp_path):
    t = tiny_models
    res = resolve_models(_specs(base={"path": str(t["base"])}, sft={"adapter": str(t["lora_a"])},
                                dpo={"adapter": str(t["lora_on_a"])}), tmp_path)
    assert res["base"].kind == "full" and res["base"].root == str(t["base"]) and res["base"].adapters == []
    assert res["sft"].kind == "adapter" and res["sft"].root == str(t["base"])
    assert res["sft"].adapters == [str(t["lora_a"])]
    assert res["dpo"].root == str(t["base"]) and res["dpo"].adapters == [str(t["lora_a"]), str(t["lora_on_a"])]
    assert res["dpo"].chain == [f"base ({t['base']})", f"sft ({t['lora_a']})", f"dpo ({t['lora_on_a']})"]
    d = res["dpo"].describe()
    assert d["chain"] == res["dpo"].chain and d["kind"] == "adapter" and d["template"] == "chat"


def test_resolve_relative_paths_and_named_base(tiny_models, tmp_path):
    shutil.copytree(tiny_models["lora_a"], tmp_path / "ckpt" / "sft")
    shutil.copytree(tiny_models["base"], tmp_path / "models" / "b")
    res = resolve_models(_specs(b={"path": "models/b"}, sft={"adapter": "ckpt/sft", "base": "b"}), tmp_path)
    assert res["sft"].root == str(tmp_path / "models" / "b") and res["sft"].chain[0] == "b (models/b)"


def test_explicit_base_overrides_adapter_config_and_fingerprint_warns(tiny_models, tmp_path):
    from tinymodels import tiny_base

    other = tiny_base(tmp_path / "other", seed=7)
    ad = tmp_path / "sft"
    shutil.copytree(tiny_models["lora_a"], ad)
    (ad / "harness-train.json").write_text(json.dumps({"base_fingerprint": fingerprint(tiny_models["base"])}))
    res = resolve_models(_specs(sft={"adapter": str(ad), "base": str(other)}), tmp_path)
    assert res["sft"].root == str(other)
    assert any("fingerprint" in w for w in res["sft"].warnings)
    assert "warnings" in res["sft"].describe()
    ok = resolve_models(_specs(sft={"adapter": str(ad)}), tmp_path)["sft"]
    assert ok.root == str(tiny_models["base"]) and ok.warnings == []


def test_adapter_without_usable_base_suggests_base(tiny_models, tmp_path):
    ad = tmp_path / "checkpoints" / "sft"
    shutil.copytree(tiny_models["lora_a"], ad)
    cfg = json.loads((ad / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (ad / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(HarnessError) as err:
        resolve_models(_specs(sft={"adapter": "checkpoints/sft"}), tmp_path)
    msg = str(err.value)
    assert "models.sft: adapter" in msg and "checkpoints/sft has no usable base" in msg
    assert "base_model_name_or_path = None" in msg and "add `base: <model name or path>` to models.sft" in msg
    cfg["base_model_name_or_path"] = "/nowhere/gone-model"
    (ad / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(HarnessError, match="no usable base .*'/nowhere/gone-model'"):
        resolve_models(_specs(sft={"adapter": "checkpoints/sft"}), tmp_path)
    fixed = resolve_models(_specs(sft={"adapter": "checkpoints/sft", "base": str(tiny_models["base"])}), tmp_path)
    assert fixed["sft"].root == str(tiny_models["base"])


def test_bad_adapter_folders_and_hub_offline(tiny_models, tmp_path):
    with pytest.raises(HarnessError, match="adapter folder .*missing.* does not exist"):
        resolve_models(_specs(sft={"adapter": "missing"}), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no adapter_config.json"):
        resolve_models(_specs(sft={"adapter": "empty"}), tmp_path)
    with pytest.raises(HarnessError, match="is a PEFT adapter folder.*adapter:"):
        resolve_models(_specs(m={"path": str(tiny_models["lora_a"])}), tmp_path)
    with pytest.raises(HarnessError, match="'someorg/not-cached-model' is not a local folder and the Hugging Face "
                                           "hub is offline.*download it first or give a local path"):
        resolve_models(_specs(m={"path": "someorg/not-cached-model"}), tmp_path)


def test_responses_model(tmp_path):
    (tmp_path / "ans.jsonl").write_text('{"model_response": "x"}\n')
    res = resolve_models(_specs(gpt={"responses": "ans.jsonl"}), tmp_path)
    assert res["gpt"].kind == "responses" and res["gpt"].root is None
    assert ModelPool(res).groups() == []
    with pytest.raises(HarnessError, match="not found"):
        resolve_models(_specs(gpt={"responses": "nope.jsonl"}), tmp_path)


def test_chat_template_read_from_tokenizer_files(tiny_models, tmp_path):
    from harness.models.resolve import chat_template_on_disk

    base = tiny_models["base"]
    assert (base / "chat_template.jinja").is_file() and chat_template_on_disk(base) is True
    plain = shutil.copytree(base, tmp_path / "plain")
    (plain / "chat_template.jinja").unlink()
    assert chat_template_on_disk(plain) is False
    cfg = json.loads((plain / "tokenizer_config.json").read_text())
    (plain / "tokenizer_config.json").write_text(json.dumps({**cfg, "chat_template": "{{ messages }}"}))
    assert chat_template_on_disk(plain) is True  # the older place: tokenizer_config.json
    (plain / "chat_template.jinja").write_text("")
    assert chat_template_on_disk(plain) is False  # the file wins over the config, as in transformers
    (plain / "additional_chat_templates").mkdir()
    (plain / "additional_chat_templates" / "tool_use.jinja").write_text("{{ messages }}")
    assert chat_template_on_disk(plain) is True
    assert chat_template_on_disk("someorg/some-model") is None  # only loading can tell
    assert chat_template_on_disk(base, gguf_file="m.gguf") is None
    assert chat_template_on_disk(tiny_models["lora_a"]) is None  # no tokenizer files


def test_reported_format_is_the_format_the_pool_uses(tiny_models, tmp_path):
    """describe() before loading (``harness models``) and ModelPool.format after loading agree,
    wherever the tokenizer comes from: the root, an explicit ``tokenizer:``, an adapter's own."""
    plain = shutil.copytree(tiny_models["base"], tmp_path / "plain")
    (plain / "chat_template.jinja").unlink()
    with_tok = shutil.copytree(tiny_models["lora_a"], tmp_path / "lora_with_tok")
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_models["base"] / f, with_tok / f)
    res = resolve_models(_specs(chat={"path": str(tiny_models["base"])}, plain={"path": str(plain)},
                                plain_sft={"adapter": str(tiny_models["lora_a"]), "base": "plain"},
                                told={"path": str(tiny_models["base"]), "tokenizer": str(plain)},
                                own_tok={"adapter": str(with_tok), "base": "plain"},
                                fixed={"path": str(plain), "prompt_format": "alpaca-ko"}), tmp_path)
    assert res["own_tok"].tokenizer_source() == (str(with_tok), {})
    assert res["told"].tokenizer_source() == (str(plain), {})
    reported = {n: r.describe()["template"] for n, r in res.items()}
    assert reported == {"chat": "chat", "plain": "alpaca", "plain_sft": "alpaca", "told": "alpaca",
                        "own_tok": "chat", "fixed": "alpaca-ko"}
    pool = ModelPool(res, device="cpu")
    assert {n: pool.format(n).name for n in res} == reported
    assert {n: pool.describe(n)["template"] for n in res} == reported


# ------------------------------------------------------------------ pool (weights)

def test_4bit_on_cpu_is_a_clear_error(tiny_models, tmp_path):
    res = resolve_models(_specs(q={"path": str(tiny_models["base"]), "load_in_4bit": True}), tmp_path)
    with pytest.raises(HarnessError, match=r"load_in_4bit needs a CUDA GPU and bitsandbytes \(pip install "
                                           r"'checkpoint-harness\[gpu\]'\); remove it to evaluate in full "
                                           r"precision on CPU"):
        ModelPool(res, device="cpu")


def test_adapter_switching_equals_separate_loads(tiny_models, tmp_path):
    from peft import PeftModel

    t = tiny_models
    res = resolve_models(_specs(base={"path": str(t["base"])}, sft={"adapter": str(t["lora_a"])},
                                other={"adapter": str(t["lora_b"])}, dpo={"adapter": str(t["lora_on_a"])}),
                         tmp_path)
    pool = ModelPool(res, device="cpu")
    assert pool.groups() == [["base", "sft", "other", "dpo"]]  # one root loaded once
    refs = {
        "base": _fresh(t["base"]),
        "sft": _fresh(t["lora_a_merged"]),
        "other": PeftModel.from_pretrained(_fresh(t["base"]), t["lora_b"]).eval(),
        "dpo": PeftModel.from_pretrained(_fresh(t["lora_a_merged"]), t["lora_on_a"]).eval(),
    }
    want = {n: _logits(m, IDS) for n, m in refs.items()}
    assert (want["dpo"] - want["sft"]).abs().max() > 1e-3  # the adapters really change outputs
    for name in ["dpo", "base", "sft", "other", "dpo", "sft", "base"]:  # interleaved switching
        model, _ = pool.model_and_tokenizer(name)
        got = _logits(model, IDS)
        assert (got - want[name]).abs().max() < 1e-5, name
    assert pool.active_adapters("dpo") == []  # last activated: base
    pool.activate("dpo")
    assert pool.active_adapters("dpo") == ["dpo", "sft"]
    assert len({id(pool.activate(n)) for n in res}) == 1
    d = pool.describe("dpo")
    assert d["params"] == sum(p.numel() for p in refs["base"].parameters()) and d["adapter_params"] > 0
    assert d["dtype"] == "float32" and d["device"] == "cpu" and len(d["template_hash"]) == 12

    # generated text through the engines equals generation on the separate loads
    from harness.backends.hf import HFEngine

    prompts = ["The quick brown fox", "대한민국의 수도는", "What is the capital of France?"]
    for name in ["dpo", "base", "other"]:
        fmt = pool.format(name)
        got = pool.engine(name).generate(prompts, fmt=fmt, max_new_tokens=12)
        ref = HFEngine(refs[name], pool.tokenizer(name), "cpu").generate(prompts, fmt=fmt, max_new_tokens=12)
        assert [g.raw for g in got] == [g.raw for g in ref], name


def test_tokenizer_fixups(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tiny_models["base"]).pad_token is None  # as shipped
    pool = ModelPool(resolve_models(_specs(base={"path": str(tiny_models["base"])}), tmp_path), device="cpu")
    tok = pool.tokenizer("base")
    assert tok.pad_token == tok.eos_token == "</s>" and tok.padding_side == "left"
    model, _ = pool.model_and_tokenizer("base")
    assert model.generation_config.pad_token_id == tok.eos_token_id


def test_adapter_tokenizer_preferred_and_bigger_vocab_resized(tiny_models, tmp_path):
    """An adapter trained with added tokens ships its tokenizer and resized embeddings: it gets
    its own copy of the base, resized before the adapter is loaded."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["base"])
    tok.add_special_tokens({"additional_special_tokens": ["<|tool|>", "<|pad2|>"]})
    m = _fresh(tiny_models["base"])
    m.resize_token_embeddings(len(tok))
    torch.manual_seed(4)
    pm = get_peft_model(m, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    ad = tmp_path / "grown"
    pm.save_pretrained(ad, save_embedding_layers=True)
    tok.save_pretrained(ad)
    res = resolve_models(_specs(base={"path": str(tiny_models["base"])}, grown={"adapter": str(ad)}), tmp_path)
    pool = ModelPool(res, device="cpu")
    assert pool.groups() == [["base"], ["grown"]]
    assert len(pool.tokenizer("grown")) == len(tok) > len(pool.tokenizer("base"))
    ref = _fresh(tiny_models["base"])
    ref.resize_token_embeddings(len(tok))
    ref = PeftModel.from_pretrained(ref, ad).eval()
    ids = IDS + [len(tok) - 1]
    model, _ = pool.model_and_tokenizer("grown")
    assert (_logits(model, ids) - _logits(ref, ids)).abs().max() < 1e-5
    base_model, _ = pool.model_and_tokenizer("base")
    assert (_logits(base_model, IDS) - _logits(_fresh(tiny_models["base"]), IDS)).abs().max() < 1e-6


def test_non_lora_adapter_gets_its_own_copy(tiny_models, tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(5)
    pm = get_peft_model(_fresh(tiny_models["base"]),
                        LoraConfig(r=2, target_modules=["q_proj", "v_proj"], use_dora=True, init_lora_weights=False))
    ad = tmp_path / "dora"
    pm.save_pretrained(ad)
    res = resolve_models(_specs(sft={"adapter": str(tiny_models["lora_a"])}, dora={"adapter": str(ad)}), tmp_path)
    pool = ModelPool(res, device="cpu")
    assert pool.groups() == [["sft"], ["dora"]]
    ref = PeftModel.from_pretrained(_fresh(tiny_models["base"]), ad).eval()
    model, _ = pool.model_and_tokenizer("dora")
    assert (_logits(model, IDS) - _logits(ref, IDS)).abs().max() < 1e-5
    model, _ = pool.model_and_tokenizer("sft")
    assert (_logits(model, IDS) - _logits(_fresh(tiny_models["lora_a_merged"]), IDS)).abs().max() < 1e-5


def _write_gguf(src: Path, out: Path) -> Path:
    """The tiny Llama as an F32 GGUF (llama.cpp's tensor names and q/k permutation)."""
    import gguf
    import numpy as np

    m = _fresh(src)
    c = m.config
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("tiny")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(float(getattr(c, "rope_theta", None) or c.rope_parameters["rope_theta"]))
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_vocab_size(c.vocab_size)
    w.add_bos_token_id(c.bos_token_id)
    w.add_eos_token_id(c.eos_token_id)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)

    def permute(a, heads):
        return a.reshape(heads, 2, a.shape[0] // heads // 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)

    for name, t in m.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied
        a = t.numpy().astype(np.float32)
        if "q_proj" in name:
            a = permute(a, c.num_attention_heads)
        elif "k_proj" in name:
            a = permute(a, c.num_key_value_heads)
        w.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")), a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def test_gguf_file_loads(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "gg"
    folder.mkdir()
    _write_gguf(tiny_models["base"], folder / "tiny.gguf")
    AutoTokenizer.from_pretrained(tiny_models["base"]).save_pretrained(folder)  # no config.json here
    res = resolve_models(_specs(g={"path": str(folder / "tiny.gguf")},
                                g2={"path": str(folder), "gguf_file": "tiny.gguf"},
                                sft={"adapter": str(tiny_models["lora_a"]), "base": "g"}), tmp_path)
    assert res["g"].root == str(folder) and res["g"].gguf_file == "tiny.gguf"
    assert res["sft"].gguf_file == "tiny.gguf"
    pool = ModelPool(res, device="cpu")
    assert pool.groups() == [["g", "g2", "sft"]]
    model, _ = pool.model_and_tokenizer("g")
    assert (_logits(model, IDS) - _logits(_fresh(tiny_models["base"]), IDS)).abs().max() < 1e-5
    model, _ = pool.model_and_tokenizer("sft")
    assert (_logits(model, IDS) - _logits(_fresh(tiny_models["lora_a_merged"]), IDS)).abs().max() < 1e-5
