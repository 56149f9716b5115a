"""ModelSpec -> ResolvedModel: how each configured checkpoint is built, before any weights are read.

``resolve_models(specs, base_dir)`` reads only small files (adapter_config.json,
harness-train.json, tokenizer_config.json) and returns a ``ResolvedModel`` per name: the full
model at the bottom of the chain (``root``), the adapters to apply on it in order, and how to
print the chain. Relative paths are taken from the config file's folder (``base_dir``). No
torch here: ``harness models`` and the plan stage use this without loading a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, did_you_mean
from harness.models.compat import check_adapter_fits
from harness.models.prompts import default_format

log = logging.getLogger("harness.models")

TRAIN_MANIFEST = "harness-train.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
CHAT_TEMPLATE_FILE = "chat_template.jinja"        # saved by transformers next to tokenizer_config.json
CHAT_TEMPLATE_DIR = "additional_chat_templates"   # named extra templates
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


@dataclass
class ResolvedModel:
    """How one configured model is built, before any weights are read."""

    name: str
    kind: str                              # "full" | "adapter" | "responses" | "served"
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
    backend: str = "hf"                    # "hf" | "vllm" | "openai" | "ollama"
    server: dict[str, Any] = field(default_factory=dict)  # served: model, base_url/host, concurrency
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
        d["backend"] = self.backend
        if self.kind == "served":
            d.update({k: v for k, v in self.server.items() if k != "api_key"},
                     template=self.format_name or self.prompt_format or "server-chat",
                     template_hash=self.template_hash)
            return d
        d.update(root=self.root, adapters=list(self.adapters), gguf_file=self.gguf_file,
                 quantization=self.quantization, dtype=self.loaded_dtype or self.dtype,
                 device=self.loaded_device or self.device,
                 template=self.format_name or self.prompt_format or self.default_format(),
                 template_hash=self.template_hash, params=self.params, adapter_params=self.adapter_params)
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d

    def tokenizer_source(self) -> tuple[str | None, dict[str, Any]]:
        """Where the tokenizer is read from, with extra ``from_pretrained`` arguments: the
        configured ``tokenizer``, else the last adapter in the chain that saved one, else the root
        (its GGUF file when the root folder has no tokenizer files)."""
        if self.tokenizer:
            return self.tokenizer, {}
        src = next((a for a in reversed(self.adapters) if has_tokenizer(a)), None)
        if src is not None:
            return src, {}
        if self.gguf_file and not has_tokenizer(self.root):
            return self.root, {"gguf_file": self.gguf_file}
        return self.root, {}

    def default_format(self) -> str:
        """The prompt format when none is configured, decided from the tokenizer's files (the
        ModelPool decides the same from the loaded tokenizer): "chat" or "alpaca"; a served
        model without a configured format is prompted through the server's chat API."""
        if self.kind == "served":
            return "server-chat"
        src, kw = self.tokenizer_source()
        return default_format(chat_template_on_disk(src, kw.get("gguf_file")))

    @property
    def group_key(self) -> tuple:
        """Models with the same key can share one loaded root."""
        return (self.root, self.gguf_file, self.revision, self.quantization, self.dtype, self.device,
                self.trust_remote_code, self.backend)


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


def has_tokenizer(folder: str | Path) -> bool:
    p = Path(folder)
    return p.is_dir() and any((p / f).is_file() for f in _TOKENIZER_FILES)


def chat_template_on_disk(src: str | Path, gguf_file: str | None = None) -> bool | None:
    """Whether the tokenizer saved at ``src`` has a chat template, read from its files as
    transformers reads them (``chat_template.jinja``, ``additional_chat_templates/``, else
    tokenizer_config.json's ``chat_template``); None when only loading can tell (a hub id, a GGUF
    file, a folder without tokenizer files)."""
    folder = Path(src)
    if gguf_file or not has_tokenizer(folder):
        return None
    extra = folder / CHAT_TEMPLATE_DIR
    if extra.is_dir() and any(extra.glob("*.jinja")):
        return True
    jinja, config = folder / CHAT_TEMPLATE_FILE, folder / "tokenizer_config.json"
    try:
        if jinja.is_file():
            return bool(jinja.read_text(encoding="utf-8"))
        cfg = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return bool(cfg.get("chat_template")) if isinstance(cfg, dict) else None


def hub_offline() -> bool:
    from harness.env import env_flag

    return env_flag("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


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


def offline_msg(ref: str) -> str:
    from harness.models.zoo.registry import zoo_name_for_hub_id

    state = "offline" if hub_offline() else "offline/unreachable"
    zoo = zoo_name_for_hub_id(ref)
    hint = (f"; the zoo ships this checkpoint offline: use `zoo:{zoo}` (e.g. `base: zoo:{zoo}`)" if zoo
            else "; download it first or give a local path")
    return f"{ref!r} is not a local folder and the Hugging Face hub is {state}{hint}"


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
        if _HUB_ID.fullmatch(ref) and (_hub_cached(ref) or not hub_offline()):
            return _Ref(ref, None, [], [ref], None)
        raise HarnessError(f"{where}: {offline_msg(ref)}")

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
                if parent.kind == "served":
                    raise HarnessError(f"{owner}.base: {base!r} is a served model (backend: {parent.backend}); "
                                       "its weights are on the server",
                                       fix="Point `base:` at the checkpoint folder or hub id, or serve the "
                                           "adapter from the server (vLLM --lora-modules) and name it there.")
                r = _Ref(parent.root, parent.gguf_file, list(parent.adapters), list(parent.chain),
                         Path(parent.adapters[-1]) if parent.adapters else _maybe_path(parent.root))
            else:
                try:
                    r = self.ref(base, f"{owner}.base", (self.base_dir,), depth)
                except HarnessError as err:
                    hint = did_you_mean(base, [n for n in self.specs if n != owner.rpartition(".")[2]])
                    if not hint:
                        raise
                    raise HarnessError(f"{owner}.base: {base!r} is no model of this config{hint}, no local "
                                       "folder and no cached hub id", fix="Name a configured model, a path, a hub "
                                                                          "id or zoo:NAME.") from err
        else:
            recorded = acfg.get("base_model_name_or_path")
            usable = None
            if recorded:
                try:
                    usable = self.ref(str(recorded), where, (folder,), depth)
                except HarnessError:
                    usable = None
            if usable is None:
                from harness.models.zoo.registry import zoo_name_for_hub_id

                zoo = zoo_name_for_hub_id(str(recorded or ""))
                suggestion = f"`base: zoo:{zoo}` (the zoo's offline copy of {recorded})" if zoo \
                    else "`base: <model name or path>`"
                raise HarnessError(
                    f"{owner}: adapter {shown or folder} has no usable base (adapter_config.json "
                    f"base_model_name_or_path = {recorded!r}): add {suggestion} to {owner}")
            r = usable
        if not r.gguf_file:
            check_adapter_fits(folder, r.root, owner)
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
        if spec.backend in ("openai", "ollama"):
            rm = ResolvedModel(name, "served", None, chain=[f"{name} ({spec.backend}: {spec.model})"],
                               backend=spec.backend, server=_server(spec), **common)
        elif spec.responses:
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
            rm = ResolvedModel(name, "full", r.root, gguf, chain=[f"{name} ({spec.path})"], backend=spec.backend,
                               **common)
        else:
            folder = _local(spec.adapter, self.base_dir) or (self.base_dir / spec.adapter)
            r = self.adapter(Path(folder), spec.base, f"{where}.adapter", model_name=name, shown=spec.adapter)
            rm = ResolvedModel(name, "adapter", r.root, spec.gguf_file or r.gguf_file, chain=r.chain,
                               adapters=r.adapters, backend=spec.backend, **common)
        rm.warnings = list(self.warnings.get(where, []))
        self.done[name] = rm
        return rm


def _server(spec) -> dict[str, Any]:
    """Where a served model lives: the configured address, else the client's environment default."""
    import os

    if spec.backend == "openai":
        where = {"base_url": spec.base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1"}
    else:
        where = {"host": spec.host or os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"}
    return {"model": spec.model, **where, "api_key": spec.api_key, "concurrency": spec.concurrency,
            "timeout": spec.timeout, "max_retries": spec.max_retries, "bos_text": spec.bos_text}


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

