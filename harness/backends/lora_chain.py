"""How a model's adapter chain is served by a vLLM engine on its base: ``serve_chain``.

vLLM takes ONE LoRA adapter per request, and only plain LoRA (no ``modules_to_save``, no DoRA,
no saved embeddings). A model is served by one of four paths, recorded in run.json:

- ``base``: no adapter;
- ``lora``: one plain LoRA adapter, sent as a ``LoRARequest`` on the shared base engine;
- ``lora-combined``: a chain of plain LoRA adapters (DPO trained on the SFT-merged model) becomes
  ONE adapter on the original base, PEFT's ``add_weighted_adapter(chain, [1, 1], "cat")``:
  A = [s1*A1; s2*A2], B = [B1, B2], alpha = rank, so B A = s1 B1 A1 + s2 B2 A2, exactly the
  stacked deltas. It is computed here on the adapter tensors alone (the same arithmetic as
  PEFT's, without loading the base) and cached under ``cache_dir`` by the adapters' content hash;
- ``merged``: anything else (modules_to_save, DoRA, rank/alpha patterns, a tokenizer bigger than
  the base's vocabulary) is merged into a full checkpoint with transformers + PEFT, also cached
  by hash, and served by an engine of its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)   # the max_lora_rank values vLLM accepts
CACHE_FORMAT = "1"                                      # bump when what is cached changes


@dataclass(frozen=True)
class ServedChain:
    """How one model is served: ``checkpoint`` is what vLLM loads, ``adapter`` the LoRA folder
    sent with each request (None for none)."""

    path: str              # "base" | "lora" | "lora-combined" | "merged"
    checkpoint: str
    adapter: str | None
    rank: int              # the adapter's rank (0 without one)
    reason: str            # why this path (run.json)


def lora_rank_limit(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds ``rank``."""
    for r in VLLM_LORA_RANKS:
        if rank <= r:
            return r
    raise HarnessError(f"a LoRA adapter of rank {rank} is larger than vLLM's largest ({VLLM_LORA_RANKS[-1]})",
                       fix="Use backend: hf for this model.")


def _config(folder: str) -> dict[str, Any]:
    path = Path(folder) / "adapter_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise HarnessError(f"{path}: cannot read the adapter config ({err})",
                           fix="Point the model at a PEFT adapter folder.") from None


def why_not_vllm_lora(folder: str) -> str | None:
    """None when vLLM can serve ``folder`` as a LoRARequest; else the reason it cannot."""
    cfg = _config(folder)
    if cfg.get("peft_type") != "LORA":
        return f"peft_type {cfg.get('peft_type')}"
    for key, what in (("use_dora", "DoRA"), ("modules_to_save", "modules_to_save"),
                      ("trainable_token_indices", "trainable tokens"), ("rank_pattern", "rank_pattern"),
                      ("alpha_pattern", "alpha_pattern"), ("layer_replication", "layer_replication")):
        if cfg.get(key):
            return what
    if cfg.get("bias", "none") != "none":
        return f"bias {cfg['bias']}"
    st = Path(folder) / "adapter_model.safetensors"
    if not st.is_file():
        return "no adapter_model.safetensors"
    from safetensors import safe_open

    with safe_open(str(st), framework="pt") as f:
        other = [k for k in f.keys() if ".lora_A." not in k and ".lora_B." not in k]  # noqa: SIM118
    return f"non-LoRA weights ({other[0]})" if other else None


def _rank(folder: str) -> int:
    return int(_config(folder)["r"])


def _scaling(cfg: dict[str, Any]) -> float:
    r, alpha = int(cfg["r"]), float(cfg.get("lora_alpha", cfg["r"]))
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def files_hash(*folders: str, extra: str = "") -> str:
    """sha256 over every file in ``folders`` (names and bytes) and ``extra``."""
    h = hashlib.sha256(f"{CACHE_FORMAT}|{extra}".encode())
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                h.update(p.name.encode() + b"\0")
                with p.open("rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(block)
    return h.hexdigest()


def _root_identity(root: str, revision: str | None) -> str:
    """Where the base is and which weights it has (names, sizes, times: no hashing of GBs)."""
    p = Path(root)
    if not p.is_dir():
        return f"{root}@{revision}"
    parts = [str(p.resolve())]
    for f in sorted(p.iterdir()):
        if f.is_file():
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _cached(target: Path, build) -> Path:
    """``target`` if a finished copy is there, else build it in a temporary folder and move it in."""
    if (target / ".complete").is_file():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    (tmp / ".complete").write_text("ok\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def combine_lora_chain(adapters: list[str], out: Path) -> None:
    """Write one LoRA adapter to ``out`` whose delta is the sum of the chain's (PEFT's "cat"
    combination with weights 1: rank = sum of ranks, lora_alpha = rank)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    cfgs = [_config(a) for a in adapters]
    ranks = [int(c["r"]) for c in cfgs]
    total = sum(ranks)
    parts: dict[str, dict[int, tuple[Any, Any]]] = {}   # module -> adapter index -> (A, B)
    dtype = None
    for i, folder in enumerate(adapters):
        with safe_open(str(Path(folder) / "adapter_model.safetensors"), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118
                if ".lora_A." in key:
                    module = key.split(".lora_A.")[0]
                    a = f.get_tensor(key)
                    dtype = dtype or a.dtype
                    a = a.float()
                    b = f.get_tensor(key.replace(".lora_A.", ".lora_B.")).float()
                    parts.setdefault(module, {})[i] = (a * _scaling(cfgs[i]), b)
    tensors = {}
    for module, by_adapter in parts.items():
        a0, b0 = next(iter(by_adapter.values()))
        A = torch.zeros((total, a0.shape[1]))
        B = torch.zeros((b0.shape[0], total))
        start = 0
        for i, r in enumerate(ranks):
            if i in by_adapter:
                a, b = by_adapter[i]
                A[start:start + r], B[:, start:start + r] = a, b
            start += r
        tensors[f"{module}.lora_A.weight"], tensors[f"{module}.lora_B.weight"] = A, B
    save_file({k: v.to(dtype).contiguous() for k, v in tensors.items()}, str(out / "adapter_model.safetensors"))
    targets: set[str] = set()
    for c in cfgs:
        t = c.get("target_modules") or []
        targets.update([t] if isinstance(t, str) else t)
    cfg = dict(cfgs[0], r=total, lora_alpha=total, use_rslora=False, target_modules=sorted(targets),
               rank_pattern={}, alpha_pattern={})
    cfg["harness_combined_from"] = [str(a) for a in adapters]
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")


def merge_chain(root: str, adapters: list[str], tokenizer: Any, out: Path, *, dtype: str = "auto",
                revision: str | None = None, trust_remote_code: bool = False) -> None:
    """Write ``root`` with every adapter of the chain merged in, in order (each on the merge of
    the ones before it, as it was trained), as a full checkpoint with the tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(root, dtype=torch_dtype, revision=revision,
                                                 trust_remote_code=trust_remote_code)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    for folder in adapters:
        model = PeftModel.from_pretrained(model, folder, is_trainable=False).merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def serve_chain(root: str, adapters: list[str], tokenizer: Any, *, cache_dir: Path, root_vocab: int,
                dtype: str = "auto", revision: str | None = None, trust_remote_code: bool = False) -> ServedChain:
    """How to serve the model ``root`` + ``adapters`` (chain order) with vLLM; builds and caches
    a combined adapter or a merged checkpoint when one is needed."""
    if not adapters:
        return ServedChain("base", root, None, 0, "no adapter")
    problems = [(a, why_not_vllm_lora(a)) for a in adapters]
    bad = next(((a, p) for a, p in problems if p), None)
    if bad is None and len(tokenizer) > root_vocab:
        bad = (adapters[-1], f"tokenizer of {len(tokenizer)} tokens > base vocabulary {root_vocab}")
    if bad is None and len(adapters) == 1:
        return ServedChain("lora", root, adapters[0], _rank(adapters[0]), "plain LoRA adapter")
    if bad is None:
        key = files_hash(*adapters, extra="combined")
        out = _cached(Path(cache_dir) / f"combined-{key[:20]}", lambda tmp: combine_lora_chain(adapters, tmp))
        return ServedChain("lora-combined", root, str(out), _rank(str(out)),
                           f"{len(adapters)} stacked LoRA adapters combined into one (cat)")
    key = files_hash(*adapters, extra=f"merged|{_root_identity(root, revision)}|{dtype}|{len(tokenizer)}")
    out = _cached(Path(cache_dir) / f"merged-{key[:20]}",
                  lambda tmp: merge_chain(root, adapters, tokenizer, tmp, dtype=dtype, revision=revision,
                                          trust_remote_code=trust_remote_code))
    return ServedChain("merged", str(out), None, 0, f"{Path(bad[0]).name}: {bad[1]} (vLLM serves plain LoRA only)")
