"""ModelSpec -> a model on a device, with adapters, sharing one base between checkpoints.

Two steps:

- ``resolve_models(specs, base_dir)`` reads only small files (adapter_config.json,
  harness-train.json) and returns a ``ResolvedModel`` per name: the full model at the bottom
  of the chain (``root``), the adapters to apply on it in order, and how to print the chain.
- ``ModelPool(resolved)`` loads each distinct root once, puts every LoRA adapter of every
  model on that root into one ``PeftModel`` by name, and ``activate(name)`` switches: no
  adapter for the base, one for an SFT adapter, several at once for a stack (for LoRA,
  W + dW_sft + dW_dpo is exactly "SFT merged, then the DPO adapter"). Adapters that are not
  plain LoRA (DoRA, modules_to_save, saved embeddings, a bigger vocabulary) get their own copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

log = logging.getLogger("harness.models")

TRAIN_MANIFEST = "harness-train.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


# ----------------------------------------------------------------------------- resolve

@dataclass
class ResolvedModel:
    """How one configured model is built, before any weights are read."""

    name: str
    kind: str                              # "full" | "adapter" | "responses"
    root: str | None                       # local folder or hub id of the full model at the bottom
    gguf_file: str | None = None
    chain: list[str] = field(default_factory=list)     # for printing, root first
    adapters: list[str] = field(default_factory=list)  # adapter folders, applied in this order
    quantization: str | None = None        # "4bit" | "8bit" | None
    dtype: str = "auto"
    device: str = "auto"
    prompt_format: str | None = None       # as configured (None: the chat template, else alpaca)
    system_prompt: str | None = None
    tokenizer: str | None = None           # explicit tokenizer source
    revision: str | None = None
    trust_remote_code: bool = False
    responses: str | None = None
    response_field: str = "model_response"
    spec: Any = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)
    # filled in once loaded
    format_name: str | None = None
    template_hash: str | None = None
    params: int | None = None
    adapter_params: int | None = None
    loaded_dtype: str | None = None
    loaded_device: str | None = None

    def describe(self) -> dict[str, Any]:
        """What ``harness models`` prints and run.json records."""
        d: dict[str, Any] = {"kind": self.kind, "chain": list(self.chain)}
        if self.kind == "responses":
            d.update(responses=self.responses, field=self.response_field)
            return d
        d.update(root=self.root, adapters=list(self.adapters), gguf_file=self.gguf_file,
                 quantization=self.quantization, dtype=self.loaded_dtype or self.dtype,
                 device=self.loaded_device or self.device,
                 template=self.format_name or self.prompt_format or "chat",
                 template_hash=self.template_hash, params=self.params, adapter_params=self.adapter_params)
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d

    @property
    def group_key(self) -> tuple:
        """Models with the same key can share one loaded root."""
        return (self.root, self.gguf_file, self.revision, self.quantization, self.dtype, self.device,
                self.trust_remote_code)


def fingerprint(folder: str | Path) -> str:
    """A cheap identity of the weights in a model or adapter folder: sizes plus the first and
    last MiB of each weight file (catches "same shape, different weights")."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    for p in files:
        size = p.stat().st_size
        h.update(str(size).encode())
        with p.open("rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    return os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _hub_cached(ref: str, revision: str | None = None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    for fname in ("config.json", "adapter_config.json"):
        try:
            hit = try_to_load_from_cache(ref, fname, revision=revision)
        except Exception:  # noqa: BLE001
            hit = None
        if isinstance(hit, str):
            return True
    return False


def _offline_msg(ref: str) -> str:
    state = "offline" if _hub_offline() else "offline/unreachable"
    return (f"{ref!r} is not a local folder and the Hugging Face hub is {state}: "
            "download it first or give a local path")


def _is_adapter_dir(p: Path) -> bool:
    return p.is_dir() and (p / "adapter_config.json").is_file()


def _is_model_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "config.json").is_file() or any(p.glob("*.gguf")))


def _local(ref: str, *bases: Path | None) -> Path | None:
    """An existing local path for ``ref`` (absolute, or relative to one of ``bases``/cwd)."""
    p = Path(ref).expanduser()
    if p.is_absolute():
        return p if p.exists() else None
    for b in bases:
        if b is not None and (b / p).exists():
            return (b / p).resolve()
    return p.resolve() if p.exists() else None


@dataclass
class _Ref:
    root: str
    gguf_file: str | None
    adapters: list[str]
    chain: list[str]
    immediate: Path | None  # the folder the last adapter was trained on (for fingerprints)


class _Resolver:
    def __init__(self, specs: dict, base_dir: Path):
        self.specs = specs
        self.base_dir = Path(base_dir)
        self.done: dict[str, ResolvedModel] = {}
        self.warnings: dict[str, list[str]] = {}

    # a root or adapter given as text (config `path:`/`base:` or adapter_config's base)
    def ref(self, ref: str, where: str, bases: tuple, depth: int = 0) -> _Ref:
        if depth > 16:
            raise HarnessError(f"{where}: adapter bases nest more than 16 deep (a loop?)")
        if ref.startswith("zoo:"):
            from harness.models.zoo import zoo_path  # lazy: the zoo may build a folder

            p = Path(zoo_path(ref))
            return _Ref(str(p), None, [], [ref], p)
        p = _local(ref, *bases)
        if p is not None:
            if p.is_file():
                if p.suffix != ".gguf":
                    raise HarnessError(f"{where}: {p} is a file but not a .gguf",
                                       fix="Give a model folder, a .gguf file, a hub id or zoo:NAME.")
                return _Ref(str(p.parent), p.name, [], [str(p)], p.parent)
            if _is_adapter_dir(p) and not (p / "config.json").is_file():
                inner = self.adapter(p, None, where, depth + 1)
                return _Ref(inner.root, inner.gguf_file, inner.adapters, inner.chain, p)
            if not _is_model_dir(p):
                raise HarnessError(f"{where}: {p} has no config.json, adapter_config.json or .gguf",
                                   fix="Point it at a saved transformers model or PEFT adapter folder.")
            return _Ref(str(p), None, [], [str(p)], p)
        if _HUB_ID.fullmatch(ref) and (_hub_cached(ref) or not _hub_offline()):
            return _Ref(ref, None, [], [ref], None)
        raise HarnessError(f"{where}: {_offline_msg(ref)}")

    def adapter(self, folder: Path, base: str | None, where: str, depth: int = 0,
                model_name: str | None = None, shown: str | None = None) -> _Ref:
        if not folder.is_dir():
            raise HarnessError(f"{where}: adapter folder {folder} does not exist",
                               fix="Check the path (relative paths are relative to the config file).")
        cfg_path = folder / "adapter_config.json"
        if not cfg_path.is_file():
            raise HarnessError(f"{where}: {folder} has no adapter_config.json, so it is not a PEFT adapter",
                               fix="Use `path:` for a full model folder, or point `adapter:` at the folder "
                                   "that save_pretrained wrote.")
        try:
            acfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise HarnessError(f"{where}: {cfg_path} is not valid JSON ({err})") from None
        label = f"{model_name} ({folder})" if model_name else str(folder)
        owner = where.rsplit(".", 1)[0] if where.endswith(".adapter") else where
        if base:
            if base in self.specs:
                parent = self.model(base)
                if parent.kind == "responses":
                    raise HarnessError(f"{owner}.base: {base!r} is a responses file, not a model")
                r = _Ref(parent.root, parent.gguf_file, list(parent.adapters), list(parent.chain),
                         Path(parent.adapters[-1]) if parent.adapters else _maybe_path(parent.root))
            else:
                r = self.ref(base, f"{owner}.base", (self.base_dir,), depth)
        else:
            recorded = acfg.get("base_model_name_or_path")
            usable = None
            if recorded:
                try:
                    usable = self.ref(str(recorded), where, (folder,), depth)
                except HarnessError:
                    usable = None
            if usable is None:
                raise HarnessError(
                    f"{owner}: adapter {shown or folder} has no usable base (adapter_config.json "
                    f"base_model_name_or_path = {recorded!r}): add `base: <model name or path>` to {owner}")
            r = usable
        self._check_fingerprint(folder, r, owner)
        return _Ref(r.root, r.gguf_file, r.adapters + [str(folder)], r.chain + [label], folder)

    def _check_fingerprint(self, folder: Path, base: _Ref, owner: str) -> None:
        man = folder / TRAIN_MANIFEST
        if not man.is_file() or base.immediate is None or not base.immediate.is_dir():
            return
        try:
            want = json.loads(man.read_text(encoding="utf-8")).get("base_fingerprint")
        except (OSError, json.JSONDecodeError, AttributeError):
            return
        if not want:
            return
        got = fingerprint(base.immediate)
        if got != want:
            msg = (f"{owner}: adapter {folder} was trained on a base with fingerprint {want}, but the "
                   f"resolved base {base.immediate} has {got}: scores may be wrong (set `base:` to the "
                   "model it was trained on)")
            self.warnings.setdefault(owner, []).append(msg)
            log.warning(msg)

    def prompt_format(self, pf: str | None) -> str | None:
        """A .jinja path becomes absolute (relative to the config file); other values stay."""
        from harness.config import PROMPT_FORMATS

        if not pf or pf in PROMPT_FORMATS or "{{" in pf or "{%" in pf:
            return pf
        p = _local(pf, self.base_dir)
        return str(p) if p is not None else pf

    def model(self, name: str) -> ResolvedModel:
        if name in self.done:
            return self.done[name]
        spec = self.specs[name]
        where = f"models.{name}"
        common: dict[str, Any] = {
            "dtype": spec.dtype, "device": spec.device, "prompt_format": self.prompt_format(spec.prompt_format),
            "system_prompt": spec.system_prompt, "revision": spec.revision,
            "trust_remote_code": spec.trust_remote_code, "spec": spec,
            "quantization": "4bit" if spec.load_in_4bit else "8bit" if spec.load_in_8bit else None,
            "tokenizer": str(_local(spec.tokenizer, self.base_dir) or spec.tokenizer) if spec.tokenizer else None,
        }
        if spec.responses:
            p = _local(spec.responses, self.base_dir)
            if p is None or not p.is_file():
                raise HarnessError(f"{where}.responses: file {spec.responses} not found",
                                   fix="Relative paths are relative to the config file.")
            rm = ResolvedModel(name, "responses", None, chain=[f"{name} (responses {p})"], responses=str(p),
                               response_field=spec.field, **common)
        elif spec.path:
            r = self.ref(spec.path, f"{where}.path", (self.base_dir,))
            if r.adapters:
                raise HarnessError(f"{where}.path: {spec.path} is a PEFT adapter folder",
                                   fix=f"Use `adapter: {spec.path}` instead of `path:`.")
            gguf = spec.gguf_file or r.gguf_file
            rm = ResolvedModel(name, "full", r.root, gguf, chain=[f"{name} ({spec.path})"], **common)
        else:
            folder = _local(spec.adapter, self.base_dir) or (self.base_dir / spec.adapter)
            r = self.adapter(Path(folder), spec.base, f"{where}.adapter", model_name=name, shown=spec.adapter)
            rm = ResolvedModel(name, "adapter", r.root, spec.gguf_file or r.gguf_file, chain=r.chain,
                               adapters=r.adapters, **common)
        rm.warnings = list(self.warnings.get(where, []))
        self.done[name] = rm
        return rm


def _maybe_path(root: str | None) -> Path | None:
    return Path(root) if root and Path(root).is_dir() else None


def resolve_models(specs: dict, base_dir: str | Path = ".") -> dict[str, ResolvedModel]:
    """Resolve every ModelSpec (no weights are read). Raises HarnessError on the first problem."""
    res = _Resolver(specs, Path(base_dir))
    out = {name: res.model(name) for name in specs}
    # label a chain's root with the configured full model that has the same root
    full = {(m.root, m.gguf_file): m.name for m in out.values() if m.kind == "full"}
    own = {m.adapters[-1]: m.name for m in out.values() if m.kind == "adapter"}
    for m in out.values():
        if m.kind != "adapter":
            continue
        if (m.root, m.gguf_file) in full:
            m.chain[0] = out[full[(m.root, m.gguf_file)]].chain[0]
        # an adapter in the middle of a stack that is also a configured model: print its name
        offset = len(m.chain) - len(m.adapters)
        for i, folder in enumerate(m.adapters[:-1]):
            if folder in own and m.chain[offset + i] == folder:
                m.chain[offset + i] = f"{own[folder]} ({folder})"
    return out


# ----------------------------------------------------------------------------- devices

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


# ----------------------------------------------------------------------------- pool

def _adapter_is_plain_lora(folder: str) -> bool:
    """True when the adapter only adds LoRA deltas (so several can be summed on one base)."""
    try:
        cfg = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if cfg.get("peft_type") != "LORA" or cfg.get("use_dora") or cfg.get("modules_to_save") \
            or cfg.get("trainable_token_indices") or cfg.get("bias", "none") != "none":
        return False
    st = Path(folder) / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            return all("lora_" in k for k in f.keys())  # noqa: SIM118 (safe_open is not a dict)
    return False  # .bin or unknown layout: load it on its own copy to be safe


def _has_tokenizer(folder: str | Path) -> bool:
    p = Path(folder)
    return p.is_dir() and any((p / f).is_file() for f in _TOKENIZER_FILES)


@dataclass
class _Group:
    model: Any                      # the transformers model the Engine calls (LoRA layers injected)
    peft: Any = None                # the PeftModel that owns the adapters (None: no adapters)
    names: dict[str, list[str]] = field(default_factory=dict)  # model name -> adapter names to activate
    active: str | None = None


class ModelPool:
    """Loads each distinct root once and switches adapters on it.

    ``device``/``dtype`` other than "auto" override every model's own setting (CLI flags).
    """

    def __init__(self, resolved: dict[str, ResolvedModel], device: str = "auto", dtype: str = "auto",
                 batch_size: int | str = "auto"):
        self.resolved = {n: r for n, r in resolved.items() if r.kind != "responses"}
        self.device_override, self.dtype_override = device, dtype
        self.batch_size = batch_size
        self._groups: dict[tuple, _Group] = {}
        self._group_of: dict[str, tuple] = {}
        self._tokenizers: dict[str, Any] = {}
        self._engines: dict[str, Any] = {}
        self._formats: dict[str, dict] = {}
        self._device: dict[str, str] = {}
        for name, r in self.resolved.items():
            dev = pick_device(device if device != "auto" else r.device)
            self._device[name] = dev
            if r.quantization:
                _check_quantization(r, dev)

    # -- planning
    def _key(self, name: str) -> tuple:
        r = self.resolved[name]
        base = r.group_key[:4] + (self._device[name], self.dtype_override if self.dtype_override != "auto"
                                  else r.dtype, r.trust_remote_code)
        if r.adapters and not (all(_adapter_is_plain_lora(a) for a in r.adapters) and not self._needs_resize(name)):
            return base + (name,)           # a copy of its own
        return base

    def groups(self) -> list[list[str]]:
        """Model names grouped by the loaded root they share, in config order (run each group,
        then ``release`` it to free memory)."""
        out: dict[tuple, list[str]] = {}
        for name in self.resolved:
            out.setdefault(self._key(name), []).append(name)
        return list(out.values())

    def _needs_resize(self, name: str) -> bool:
        r = self.resolved[name]
        if not r.adapters:
            return False
        tok = self.tokenizer(name)
        return len(tok) > self._root_vocab(r)

    def _root_vocab(self, r: ResolvedModel) -> int:
        if r.gguf_file or not (Path(r.root) / "config.json").is_file():
            from transformers import AutoConfig

            kw = {"gguf_file": r.gguf_file} if r.gguf_file else {}
            cfg = AutoConfig.from_pretrained(r.root, revision=r.revision, trust_remote_code=r.trust_remote_code, **kw)
        else:
            cfg = json.loads((Path(r.root) / "config.json").read_text(encoding="utf-8"))
            cfg = type("C", (), {"vocab_size": cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size")})
        return int(getattr(cfg, "vocab_size", 0) or getattr(getattr(cfg, "text_config", None), "vocab_size", 0) or 0)

    # -- tokenizers
    def tokenizer(self, name: str):
        r = self.resolved[name]
        if r.tokenizer:
            src, kw = r.tokenizer, {}
        else:
            src = next((a for a in reversed(r.adapters) if _has_tokenizer(a)), None)
            kw = {}
            if src is None:
                src = r.root
                if r.gguf_file and not _has_tokenizer(r.root):
                    kw["gguf_file"] = r.gguf_file
        cache_key = f"{src}|{kw.get('gguf_file')}"
        if cache_key not in self._tokenizers:
            self._tokenizers[cache_key] = load_tokenizer(src, revision=None if src != r.root else r.revision,
                                                         trust_remote_code=r.trust_remote_code,
                                                         where=f"models.{name}", **kw)
        return self._tokenizers[cache_key]

    # -- loading
    def _group(self, name: str) -> _Group:
        if name not in self.resolved:
            raise HarnessError(f"model {name!r} is not in this pool (responses models have no weights)")
        key = self._key(name)
        if key not in self._groups:
            members = [n for n in self.resolved if self._key(n) == key]
            self._groups[key] = self._load_group(members)
        self._group_of[name] = key
        return self._groups[key]

    def _load_group(self, members: list[str]) -> _Group:
        from peft import PeftModel

        first = self.resolved[members[0]]
        device = self._device[members[0]]
        model = load_root(first, device, self.dtype_override if self.dtype_override != "auto" else first.dtype)
        params = sum(p.numel() for p in model.parameters())
        group = _Group(model)
        if len(members) == 1 and (own := self.resolved[members[0]]).adapters and self._key(own.name)[-1] == own.name:
            # a copy of its own: resize if needed, merge all but the last adapter, keep the last live
            tok = self.tokenizer(own.name)
            if len(tok) > model.get_input_embeddings().weight.shape[0]:
                model.resize_token_embeddings(len(tok))
            for folder in own.adapters[:-1]:
                model = _peft_load(PeftModel, model, folder, "merge", own.name).merge_and_unload()
            group.peft = _peft_load(PeftModel, model, own.adapters[-1], own.name, own.name)
            group.names[own.name] = [own.name]
        else:
            by_folder: dict[str, str] = {}
            for n in members:  # a model's own adapter is named after it; others get folder-based names
                r = self.resolved[n]
                if r.adapters:
                    by_folder.setdefault(r.adapters[-1], n)
            for n in members:
                r = self.resolved[n]
                names = []
                for i, folder in enumerate(r.adapters):
                    an = by_folder.setdefault(folder, f"{n}__{i}")
                    if group.peft is None:
                        group.peft = _peft_load(PeftModel, model, folder, an, n)
                    elif an not in group.peft.peft_config:
                        try:
                            group.peft.load_adapter(folder, adapter_name=an)
                        except Exception as err:  # noqa: BLE001
                            raise HarnessError(f"models.{n}: could not load adapter {folder}: {err}",
                                               fix="Check that the adapter was trained on this base "
                                                   "(or set `base:`).") from None
                    names.append(an)
                group.names[n] = names
        if group.peft is not None:
            group.model = group.peft.base_model.model
        group.model.eval()
        for n in members:
            r = self.resolved[n]
            r.params = params
            r.loaded_dtype = str(next(group.model.parameters()).dtype).removeprefix("torch.")
            r.loaded_device = device
            names = group.names.get(n, [])
            r.adapter_params = sum(p.numel() for pn, p in group.model.named_parameters()
                                   if "lora_" in pn and any(f".{a}." in pn or pn.endswith(f".{a}")
                                                            for a in names)) if names else 0
            tok = self.tokenizer(n)
            if getattr(group.model, "generation_config", None) is not None and \
                    group.model.generation_config.pad_token_id is None:
                group.model.generation_config.pad_token_id = tok.pad_token_id
        return group

    def activate(self, name: str):
        """Make ``name``'s adapters (and only those) active on its shared model; return the model."""
        g = self._group(name)
        names = g.names.get(name, [])
        if g.peft is not None and g.active != name:
            tuner = g.peft.base_model
            if not names:
                tuner._enable_adapter_layers(False)
            else:
                tuner._enable_adapter_layers(True)
                tuner.set_adapter(names if len(names) > 1 else names[0], inference_mode=True)
        g.active = name
        return g.model

    def active_adapters(self, name: str) -> list[str]:
        """What the LoRA layers of ``name``'s model really have active now ([] = base)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        g = self._group(name)
        seen: set[tuple] = set()
        for m in g.model.modules():
            if isinstance(m, BaseTunerLayer):
                seen.add(() if m.disable_adapters else tuple(sorted(m.active_adapters)))
        if len(seen) > 1:
            raise RuntimeError(f"adapter layers disagree about what is active: {seen}")
        return list(next(iter(seen), ()))

    def check_active(self, name: str) -> None:
        want = sorted(self._group(name).names.get(name, []))
        got = self.active_adapters(name)
        if got != want:
            raise RuntimeError(f"model {name}: active adapters {got} != expected {want}")

    def format(self, name: str, override: str | None = None, base_dir: str | Path | None = None):
        """The one decision of how ``name`` is prompted: ``override`` (a task's prompt_format,
        relative paths from ``base_dir``), else the model's configured format (relative paths
        were made absolute from the config file), else the tokenizer's chat template when it has
        one, else alpaca. The model's own format is recorded for run.json / ``harness models``."""
        from harness.models.prompts import get_format

        r = self.resolved[name]
        tok = self.tokenizer(name)
        spec = override or r.prompt_format or ("chat" if getattr(tok, "chat_template", None) else "alpaca")
        key = (spec, str(base_dir) if override else None)
        if key not in self._formats.setdefault(name, {}):
            fmt = get_format(spec, tok, base_dir=base_dir if override else None)
            self._formats[name][key] = fmt
        fmt = self._formats[name][key]
        if not override:
            r.format_name, r.template_hash = fmt.name, fmt.template_hash
        return fmt

    def system_prompt(self, name: str) -> str | None:
        return self.resolved[name].system_prompt

    def engine(self, name: str, batch_size: int | str | None = None):
        """The Engine for ``name``; every call on it first activates ``name``'s adapters."""
        if name not in self._engines:
            from harness.backends.hf import HFEngine

            model = self.activate(name)
            self._engines[name] = HFEngine(model, self.tokenizer(name), self._device[name],
                                           batch_size=batch_size or self.batch_size,
                                           before=lambda n=name: self.activate(n))
        return self._engines[name]

    def model_and_tokenizer(self, name: str):
        """(model, tokenizer) with ``name`` active, for lm-eval's HFLM(pretrained=model, tokenizer=tok).
        The model is the plain transformers model with LoRA layers injected; activation is a
        state of those layers, so call this again (or ``activate``) before each model's lm-eval run."""
        model = self.activate(name)
        self.check_active(name)
        return model, self.tokenizer(name)

    def describe(self, name: str) -> dict[str, Any]:
        if name in self.resolved:
            self.format(name)
            return self.resolved[name].describe()
        raise HarnessError(f"model {name!r} is not in this pool")

    def param_count(self, name: str) -> int:
        self._group(name)
        return int(self.resolved[name].params or 0)

    def release(self, name: str) -> None:
        """Free the loaded root that ``name`` uses (and every engine on it)."""
        key = self._group_of.get(name) or self._key(name)
        self._groups.pop(key, None)
        for n in [n for n, k in self._group_of.items() if k == key]:
            self._group_of.pop(n, None)
            self._engines.pop(n, None)
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


def _peft_load(PeftModel, model, folder: str, adapter_name: str, owner: str):
    try:
        return PeftModel.from_pretrained(model, folder, adapter_name=adapter_name, is_trainable=False)
    except Exception as err:  # noqa: BLE001
        raise HarnessError(f"models.{owner}: could not load adapter {folder}: {str(err).splitlines()[0]}",
                           fix="Check that the adapter was trained on this base (or set `base:`).") from None


def _check_quantization(r: ResolvedModel, device: str) -> None:
    flag = "load_in_4bit" if r.quantization == "4bit" else "load_in_8bit"
    import importlib.util

    if not device.startswith("cuda") or importlib.util.find_spec("bitsandbytes") is None:
        raise HarnessError(f"models.{r.name}: {flag} needs a CUDA GPU and bitsandbytes "
                           "(pip install 'harness[gpu]'); remove it to evaluate in full precision on CPU")


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
        _check_quantization(r, device)
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
            raise HarnessError(f"models.{r.name}: {_offline_msg(r.root)}" if _hub_offline()
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


Activator = Callable[[], Any]
