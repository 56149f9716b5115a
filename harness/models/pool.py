"""The ModelPool: each distinct loaded root once, adapters switched on it, one Engine per model.

``ModelPool(resolved)`` loads each distinct root once, puts every LoRA adapter of every model on
that root into one ``PeftModel`` by name, and ``activate(name)`` switches: no adapter for the
base, one for an SFT adapter, several at once for a stack (for LoRA, W + dW_sft + dW_dpo is
exactly "SFT merged, then the DPO adapter"). Adapters that are not plain LoRA (DoRA,
modules_to_save, saved embeddings, a bigger vocabulary) get their own copy. ``format(name)`` is
the one decision of how a model is prompted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.env import free_memory
from harness.errors import HarnessError
from harness.models.hf_load import check_quantization, load_root, load_tokenizer, pick_device
from harness.models.resolve import ResolvedModel


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
        self._vllm_groups: dict[tuple, dict[str, Any]] = {}
        self.served_cache: Path | None = None  # set by the runner: answers of served models, per run
        self._side_pools: dict[str, tuple] = {}
        for name, r in self.resolved.items():
            if r.kind == "served":
                continue
            dev = pick_device(device if device != "auto" else r.device)
            self._device[name] = dev
            if r.quantization:
                check_quantization(r, dev)

    # -- planning
    def _key(self, name: str) -> tuple:
        r = self.resolved[name]
        if r.kind == "served":
            return ("served", name)
        if r.backend == "vllm":  # one vLLM engine per base serves every LoRA adapter on it; an adapter
            from harness.backends.lora_chain import why_not_vllm_lora  # vLLM cannot take is merged: its own

            return r.group_key + ((name,) if any(why_not_vllm_lora(a) for a in r.adapters) else ())
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
        """The model's tokenizer (None for a served model without a configured ``tokenizer``)."""
        r = self.resolved[name]
        src, kw = r.tokenizer_source()
        if src is None:
            return None
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
        from harness.models.prompts import default_format, get_format

        r = self.resolved[name]
        tok = self.tokenizer(name)
        if r.kind == "served" and not (override or r.prompt_format):
            fmt = self.engine(name).chat_format()
            r.format_name, r.template_hash = fmt.name, fmt.template_hash
            return fmt
        if r.kind == "served" and tok is None and (override or r.prompt_format) == "chat":
            raise HarnessError(f"models.{name}: prompt_format 'chat' renders the chat template locally, and this "
                               "served model has no tokenizer to read it from",
                               fix="Set `tokenizer:` (a folder or hub id with the chat template), or leave "
                                   "prompt_format unset to use the server's chat API.")
        spec = override or r.prompt_format or default_format(bool(getattr(tok, "chat_template", None)))
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

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s Engine is made (its weights loaded, for a local model)."""
        return name in self._engines

    def engine(self, name: str, batch_size: int | str | None = None):
        """The Engine for ``name`` on its configured backend. transformers: every call first
        activates ``name``'s adapters on the shared base. vLLM: one engine per base serves every
        adapter on it (one vLLM engine is open at a time). Served: a client of the server."""
        r = self.resolved.get(name)
        if r is None:
            raise HarnessError(f"model {name!r} is not in this pool (responses models have no weights)")
        if name not in self._engines and r.kind == "served":
            self._engines[name] = self._served_engine(r)
        elif name not in self._engines and r.backend == "vllm":
            self._open_vllm(name)
        if name not in self._engines:
            from harness.backends.hf import HFEngine

            model = self.activate(name)
            self._engines[name] = HFEngine(model, self.tokenizer(name), self._device[name],
                                           batch_size=batch_size or self.batch_size,
                                           before=lambda n=name: self.activate(n))
        return self._engines[name]

    def hf_engine(self, name: str):
        """A transformers engine for ``name`` whatever its backend (the parity check compares it with
        the configured one). Loaded in a pool of its own, so it never shares memory bookkeeping
        with the configured engine."""
        r = self.resolved[name]
        if r.backend == "hf":
            return self.engine(name)
        from dataclasses import replace

        members = {n: replace(m, backend="hf") for n, m in self.resolved.items()
                   if m.kind != "served" and m.group_key[:-1] == r.group_key[:-1]}
        if "_hf" not in self._side_pools or self._side_pools["_hf"][0] != set(members):
            self._side_pools["_hf"] = (set(members), ModelPool(members, self.device_override, self.dtype_override,
                                                               self.batch_size))
        return self._side_pools["_hf"][1].engine(name)

    def use_served_cache(self, folder: Path) -> None:
        """Keep served models' answers under ``folder`` (the run directory's); engines built
        before (the plan's server check) are rebuilt with it."""
        self.served_cache = folder
        for n in [n for n in self._engines if self.resolved[n].kind == "served"]:
            self._engines.pop(n)

    def _served_engine(self, r: ResolvedModel):
        """A client of the server that serves ``r`` (answers cached under ``served_cache`` when the
        runner set it to a folder of the run directory, so a resumed unit does not re-ask)."""
        srv = r.server
        common = {"concurrency": srv["concurrency"], "timeout": srv["timeout"], "max_retries": srv["max_retries"],
                  "cache_dir": self.served_cache}
        if r.backend == "openai":
            from harness.backends.served_openai import OpenAIEngine

            return OpenAIEngine(srv["model"], srv["base_url"], api_key=srv.get("api_key"), bos_text=srv.get("bos_text"),
                                **common)
        from harness.backends.served_ollama import OllamaEngine

        return OllamaEngine(srv["model"], srv["host"], **common)

    def release_hf(self) -> None:
        """Free the transformers side pool made by ``hf_engine``."""
        self._side_pools.pop("_hf", None)
        free_memory()

    def close_vllm(self) -> None:
        """Close every open vLLM engine (they are opened again on the next ``engine`` call)."""
        if not self._vllm_groups:
            return
        from harness.backends.vllm import close_vllm_group

        for key in list(self._vllm_groups):
            close_vllm_group(self._vllm_groups.pop(key))
        for n in [n for n in self._engines if self.resolved[n].backend == "vllm"]:
            self._engines.pop(n)
        free_memory()

    def _open_vllm(self, name: str) -> None:
        """Open the vLLM engine of ``name``'s base for every configured model on it, closing any
        other vLLM engine first (one vLLM engine per process holds the accelerator's memory)."""
        from harness.backends.vllm import close_vllm_group, open_vllm_group
        from harness.env import cache_root

        key = self._key(name)
        for other in [k for k in self._vllm_groups if k != key]:
            close_vllm_group(self._vllm_groups.pop(other))
            for n in [n for n in self._engines if self.resolved[n].backend == "vllm" and self._key(n) == other]:
                self._engines.pop(n)
        members = [n for n in self.resolved if self._key(n) == key]
        first = self.resolved[name]
        engines = open_vllm_group(
            first.root, {n: list(self.resolved[n].adapters) for n in members}, self.tokenizer(name),
            dtype=self.dtype_override if self.dtype_override != "auto" else first.dtype,
            revision=first.revision, trust_remote_code=first.trust_remote_code,
            options=dict(first.spec.vllm) if first.spec is not None else {},
            cache_dir=cache_root() / "vllm-adapters")
        self._vllm_groups[key] = engines
        for n in members:
            self.resolved[n].loaded_device = "vllm"
        self._engines.update(engines)

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
            out = self.resolved[name].describe()
            if name in self._engines:
                out["engine"] = self._engines[name].info.to_dict()
            return out
        raise HarnessError(f"model {name!r} is not in this pool")

    def param_count(self, name: str) -> int:
        if self.resolved[name].kind == "served" or self.resolved[name].backend == "vllm":
            return int(self.resolved[name].params or 0)
        self._group(name)
        return int(self.resolved[name].params or 0)

    def release(self, name: str) -> None:
        """Free the loaded root that ``name`` uses (and every engine on it)."""
        key = self._group_of.get(name) or self._key(name)
        self._groups.pop(key, None)
        if key in self._vllm_groups:
            from harness.backends.vllm import close_vllm_group

            close_vllm_group(self._vllm_groups.pop(key))
            for n in [n for n in self._engines if self._key(n) == key]:
                self._engines.pop(n)
        for n in [n for n, k in self._group_of.items() if k == key]:
            self._group_of.pop(n, None)
            self._engines.pop(n, None)
        free_memory()


def _peft_load(PeftModel, model, folder: str, adapter_name: str, owner: str):
    try:
        return PeftModel.from_pretrained(model, folder, adapter_name=adapter_name, is_trainable=False)
    except Exception as err:  # noqa: BLE001
        raise HarnessError(f"models.{owner}: could not load adapter {folder}: {str(err).splitlines()[0]}",
                           fix="Check that the adapter was trained on this base (or set `base:`).") from None

