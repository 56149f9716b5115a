"""Does an adapter fit its base? Checked from small files, before any weights load.

An adapter applied to a base of another shape fails deep inside PEFT (after the base loaded,
tens of seconds in) or, worse, a base of the same shape but other weights loads silently (the
fingerprint check in resolve.py warns about that). This module reads only the base's
``config.json`` and the adapter's safetensors header (a JSON blob at the start of the file) and
compares the widths of the LoRA matrices and the layer numbers with the base's dimensions.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

_LAYER = re.compile(r"\.(?:layers|h|layer|blocks)\.(\d+)\.")


def _first(cfg: dict[str, Any], *keys: str) -> int | None:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, int) and v > 0:
            return v
    return None


def base_dims(config: dict[str, Any]) -> dict[str, Any] | None:
    """hidden size, layer count and every width a LoRA matrix of this model can have."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    if hidden is None:
        return None
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(cfg, "num_attention_heads", "n_head") or 1
    kv = _first(cfg, "num_key_value_heads") or heads
    head_dim = _first(cfg, "head_dim") or hidden // heads
    inter = _first(cfg, "intermediate_size", "n_inner", "ffn_dim", "d_ff") or 4 * hidden
    moe = _first(cfg, "moe_intermediate_size", "shared_expert_intermediate_size")
    vocab = _first(cfg, "vocab_size")
    widths = {hidden, inter, 2 * inter, 3 * hidden, heads * head_dim, kv * head_dim,
              heads * head_dim + 2 * kv * head_dim}
    widths |= {w for w in (moe, vocab) if w}
    return {"hidden": hidden, "layers": layers, "widths": widths}


def lora_shapes(adapter_dir: Path) -> dict[str, list[int]] | None:
    """``{tensor name: shape}`` of the LoRA matrices, from the safetensors header (no torch)."""
    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                return None
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError):
        return None
    return {k: v["shape"] for k, v in header.items()
            if isinstance(v, dict) and (".lora_A." in k or ".lora_B." in k)}


def check_adapter_fits(adapter_dir: Path, root: str | Path, owner: str) -> None:
    """Raise a one-line HarnessError when the adapter's LoRA widths or layer numbers cannot
    belong to the model at ``root`` (a local folder with config.json); silent when unknown."""
    cfg_path = Path(root) / "config.json"
    shapes = lora_shapes(adapter_dir)
    if not shapes or not cfg_path.is_file():
        return
    try:
        dims = base_dims(json.loads(cfg_path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return
    if dims is None:
        return
    fix = f"Set `base:` on {owner} to the model the adapter was trained on."
    ins = {shape[1] for k, shape in shapes.items() if ".lora_A." in k and len(shape) == 2}
    outs = {shape[0] for k, shape in shapes.items() if ".lora_B." in k and len(shape) == 2}
    if dims["hidden"] not in ins | outs:
        trained = sorted(ins | outs)
        raise HarnessError(f"{owner}: adapter {adapter_dir} does not fit the base {root}: its LoRA matrices are "
                           f"{', '.join(map(str, trained[:4]))} wide but the base's hidden size is "
                           f"{dims['hidden']}", fix=fix)
    odd = sorted((ins | outs) - dims["widths"])
    if odd:
        raise HarnessError(f"{owner}: adapter {adapter_dir} does not fit the base {root}: LoRA width "
                           f"{odd[0]} matches no dimension of the base (hidden {dims['hidden']})", fix=fix)
    layers = [int(m.group(1)) for k in shapes for m in [_LAYER.search(k)] if m]
    if dims["layers"] and layers and max(layers) >= dims["layers"]:
        raise HarnessError(f"{owner}: adapter {adapter_dir} does not fit the base {root}: it has weights for "
                           f"layer {max(layers)} but the base has {dims['layers']} layers", fix=fix)
