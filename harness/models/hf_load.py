"""transformers loading: the device and dtype to use, a root model, a tokenizer ready to generate.

Used by the ModelPool (which adds adapters on top) and by benchmarks that pick a device. torch
and transformers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.models.resolve import hub_offline, offline_msg

if TYPE_CHECKING:
    from harness.models.resolve import ResolvedModel


def pick_device(spec: str = "auto") -> str:
    """"auto" -> cuda, else mps, else cpu. An explicit device is checked."""
    import torch

    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"device {spec!r} was asked for but no CUDA GPU is visible",
                           fix="Use `device: auto` or `device: cpu`.")
    if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HarnessError("device 'mps' was asked for but Apple MPS is not available", fix="Use `device: auto`.")
    if not (spec == "cpu" or spec == "mps" or spec.startswith("cuda")):
        raise HarnessError(f"unknown device {spec!r}", fix="Use auto, cpu, cuda, cuda:N or mps.")
    return spec


def pick_dtype(dtype: str = "auto", device: str = "cpu"):
    """"auto": bf16 on a CUDA GPU that supports it (else fp16), fp32 on CPU and MPS."""
    import torch

    named = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
             "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype and dtype != "auto":
        if dtype not in named:
            raise HarnessError(f"unknown dtype {dtype!r}", fix="Use auto, bfloat16, float16 or float32.")
        return named[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def check_quantization(r: ResolvedModel, device: str) -> None:
    flag = "load_in_4bit" if r.quantization == "4bit" else "load_in_8bit"
    import importlib.util

    if not device.startswith("cuda") or importlib.util.find_spec("bitsandbytes") is None:
        raise HarnessError(f"models.{r.name}: {flag} needs a CUDA GPU and bitsandbytes "
                           "(pip install 'checkpoint-harness[gpu]'); remove it to evaluate in full precision on CPU")


def load_root(r: ResolvedModel, device: str, dtype: str = "auto"):
    """The full model at the bottom of ``r``'s chain, on ``device``, in eval mode."""
    from transformers import AutoModelForCausalLM

    torch_dtype = pick_dtype(dtype, device)
    kw: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": r.trust_remote_code}
    if r.revision:
        kw["revision"] = r.revision
    if r.gguf_file:
        kw["gguf_file"] = r.gguf_file
    if r.quantization:
        check_quantization(r, device)
        from transformers import BitsAndBytesConfig

        spec = r.spec
        compute = pick_dtype(getattr(spec, "bnb_4bit_compute_dtype", "auto"), device)
        kw["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=getattr(spec, "bnb_4bit_quant_type", "nf4"),
                               bnb_4bit_use_double_quant=getattr(spec, "bnb_4bit_use_double_quant", True),
                               bnb_4bit_compute_dtype=compute)
            if r.quantization == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
        kw["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(r.root, **kw)
    except OSError as err:
        if not Path(r.root).exists():
            raise HarnessError(f"models.{r.name}: {offline_msg(r.root)}" if hub_offline()
                               else f"models.{r.name}: could not load {r.root!r} from the hub ({err})",
                               fix="Download it first or give a local path.") from None
        raise HarnessError(f"models.{r.name}: could not load {r.root}: {str(err).splitlines()[0]}") from None
    if not r.quantization:
        model.to(device)
    model.eval()
    return model


def load_tokenizer(src: str, *, revision: str | None = None, trust_remote_code: bool = False,
                   where: str = "model", **kw):
    """AutoTokenizer with the fix-ups generation needs: a pad token and left padding."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(src, revision=revision, trust_remote_code=trust_remote_code, **kw)
    except (OSError, ValueError) as err:
        raise HarnessError(f"{where}: could not load a tokenizer from {src}: {str(err).splitlines()[0]}",
                           fix="Set `tokenizer: <folder>` on the model.") from None
    if tok.pad_token is None:
        if tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        elif tok.unk_token is not None:
            tok.pad_token = tok.unk_token
        else:
            tok.pad_token = tok.convert_ids_to_tokens(0)
    tok.padding_side = "left"
    return tok
