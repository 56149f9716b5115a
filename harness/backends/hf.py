"""The transformers backend: ``HFEngine`` serves one checkpoint loaded by the model pool.

It implements the ``harness.engine.Engine`` protocol with a hand-written batched greedy decoder
(finished rows leave the KV cache, so a batch never computes answers that already ended; the
same argmax decisions as ``model.generate``) and right-padded log-likelihood scoring with
lm-eval's token-boundary rules. Batches halve on out-of-memory when the batch size is "auto".
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from harness.backends.tokens import TokenEngine, prepare_tokenizer
from harness.engine import EngineInfo, Generation
from harness.errors import HarnessError

log = logging.getLogger("harness.engine")


def _is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class HFEngine(TokenEngine):
    """Serves one transformers checkpoint (tokenization, lm-eval splits, rolling windows and
    generation post-processing come from ``TokenEngine``). ``before`` (set by ModelPool) activates this model's
    adapters before every call, so engines sharing one base never see each other's adapters."""

    def __init__(self, model: Any, tokenizer: Any, device: str | None = None, batch_size: int | str = "auto",
                 *, before: Callable[[], Any] | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self._before = before
        if device is None:
            device = str(next(model.parameters()).device)
        self.device = device
        if batch_size == "auto":
            self.batch_size, self.auto_batch = (64 if str(device).startswith("cuda") else 16), True
        else:
            self.batch_size, self.auto_batch = int(batch_size), False
        prepare_tokenizer(tokenizer)
        self.model.eval()
        from harness.env import package_version

        self.info = EngineInfo("hf", package_version("transformers") or "", details={"device": str(device)})
        self._slices_logits = _takes_logits_mask(model)

    # ------------------------------------------------------------------ helpers
    @property
    def max_length(self) -> int:
        cfg = self.model.config
        n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        tml = getattr(self.tokenizer, "model_max_length", None)
        if tml and tml < 1_000_000:
            n = min(n, tml) if n else tml
        return int(n or 2048)

    def _vocab_size(self) -> int:
        out = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        n = getattr(out, "out_features", None) or getattr(self.model.config, "vocab_size", None)
        return int(n or len(self.tokenizer))

    def _input_device(self):
        try:
            return self.model.device
        except AttributeError:
            return next(self.model.parameters()).device

    def _generation_eos(self):
        return getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)

    def _prepare(self):
        if self._before is not None:
            self._before()

    def _batches(self, order: list[int], run: Callable[[list[int]], None],
                 progress: Callable[[int, int], None] | None = None) -> None:
        """Run ``run`` over ``order`` in batches, halving the batch size on out-of-memory."""
        i, total = 0, len(order)
        while i < total:
            chunk = order[i:i + self.batch_size]
            try:
                run(chunk)
            except Exception as err:
                if not _is_oom(err):
                    raise
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if not self.auto_batch or self.batch_size == 1:
                    raise HarnessError(f"out of memory at batch size {self.batch_size}",
                                       fix="Lower generation.batch_size or max_new_tokens, or use "
                                           "load_in_4bit on a GPU.") from None
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("out of memory: batch size -> %d", self.batch_size)
                continue
            i += len(chunk)
            if progress is not None:
                progress(i, total)

    # ------------------------------------------------------------------ generate
    def generate(self, prompts: Sequence[str], *, fmt: Any = None, max_new_tokens: int = 128,
                 temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> list[Generation]:
        """Continuations of ``prompts`` (already rendered). ``fmt`` (a PromptFormat) adds its stop
        strings and strips its headers from the answer; None returns the raw continuation cut
        at the stops."""
        import torch
        from transformers import GenerationConfig

        self._prepare()
        tok = self.tokenizer
        stops = self._stops(fmt, stop)
        eos_ids = self._eos_ids()
        pad = tok.pad_token_id
        sample = temperature > 0
        gen_cfg = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=sample, num_beams=1,
            temperature=temperature if sample else None, top_p=top_p if sample else None,
            top_k=0 if sample else None, eos_token_id=eos_ids or None, pad_token_id=pad,
            stop_strings=stops or None)
        encoded = self._encode_prompts(prompts, max_new_tokens)
        order = sorted(range(len(prompts)), key=lambda k: -len(encoded[k]))
        out: list[Generation | None] = [None] * len(prompts)
        dev = self._input_device()
        torch.manual_seed(seed)

        def run(chunk: list[int]) -> None:
            width = max(len(encoded[k]) for k in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, k in enumerate(chunk):
                seq = encoded[k]
                ids[r, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[r, width - len(seq):] = 1
            if sample:
                with torch.inference_mode():
                    res = self.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                                              generation_config=gen_cfg,
                                              tokenizer=tok if stops else None)
                new = res[:, width:].tolist()
            else:
                new = self._greedy(ids.to(dev), mask.to(dev), max_new_tokens, eos_ids, stops)
            for r, k in enumerate(chunk):
                out[k] = self._to_generation(new[r], fmt=fmt, stops=stops, eos_ids=eos_ids,
                                             max_new_tokens=max_new_tokens)

        self._batches(order, run, progress)
        return out  # type: ignore[return-value]

    def _greedy(self, ids, mask, max_new_tokens: int, eos_ids: list[int], stops: list[str]) -> list[list[int]]:
        """Greedy decoding with a KV cache that drops rows as soon as they finish (EOS or a stop
        string), so a batch does not keep computing answers that already ended. Same argmax
        decisions as ``model.generate(do_sample=False)``; only finished rows leave the batch."""
        import inspect

        import torch

        tok = self.tokenizer
        eos = set(eos_ids)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        # transformers >= 5.2x names the KV cache argument `cache` (earlier: past_key_values)
        cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

        def kv(out):
            got = out.get("cache")
            return got if got is not None else out.get("past_key_values")

        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        new: list[list[int]] = [[] for _ in range(ids.shape[0])]
        active = list(range(ids.shape[0]))  # original row of each current batch row
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                             logits_to_keep=1)
            cache, logits, last = kv(out), out.logits[:, -1, :], pos[:, -1]
            for step in range(max_new_tokens):
                nxt = logits.argmax(-1)
                keep = []
                for r, row in enumerate(active):
                    t = int(nxt[r])
                    new[row].append(t)
                    ended = t in eos or (stops and any(x in tok.decode(new[row], skip_special_tokens=False)
                                                       for x in stops))
                    if not ended:
                        keep.append(r)
                if not keep or step + 1 == max_new_tokens:
                    break
                if len(keep) < len(active):
                    idx = torch.tensor(keep, device=ids.device)
                    cache.batch_select_indices(idx)
                    mask, nxt, last = mask[idx], nxt[idx], last[idx]
                    active = [active[r] for r in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                last = last + 1
                out = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[:, None],
                                 use_cache=True, **{cache_kw: cache})
                cache, logits = kv(out), out.logits[:, -1, :]
        return new

    # ------------------------------------------------------------------ scoring
    def _score(self, seqs: list[list[int]], n_conts: list[int],
               progress: Callable[[int, int], None] | None = None, *,
               like_hflm: bool = False) -> list[tuple[float, bool]]:
        """For each token sequence, sum log p of its last n tokens given what precedes them, and
        whether each of those tokens is the argmax. Right-padded batches, longest first.

        ``like_hflm``: batch exactly as lm-eval's HFLM does, so that the numbers equal HFLM's:
        sequences with the same input (all but the last token; e.g. the one-token answers A-D of
        one question) share one forward row, rows of equal length are ordered by their tokens,
        padding is token 0 and no attention mask is passed (right padding cannot change the
        positions before it in a causal model)."""
        import torch

        limit = self.max_length
        seqs = [s[-(limit + 1):] for s in seqs]
        rows: dict[tuple, list[int]] = {}  # the input fed to the model -> the sequences it serves
        for k, s in enumerate(seqs):
            rows.setdefault(tuple(s[:-1]) if like_hflm else (k,), []).append(k)
        # a row is fed as its member with the longest continuation (the first such, as lm-eval)
        lead = [max(ks, key=lambda k: n_conts[k]) for ks in rows.values()]
        members = dict(zip(lead, rows.values()))
        order = sorted(lead, key=lambda k: (-len(seqs[k]), tuple(seqs[k])) if like_hflm else -len(seqs[k]))
        out: list[tuple[float, bool] | None] = [None] * len(seqs)
        dev = self._input_device()
        pad = 0 if like_hflm else self.tokenizer.pad_token_id or 0

        def forward(chunk: list[int]) -> None:
            inputs = [seqs[k][:-1] for k in chunk]
            width = max(len(x) for x in inputs)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, x in enumerate(inputs):
                ids[r, :len(x)] = torch.tensor(x, dtype=torch.long)
                mask[r, :len(x)] = 1
            # logits only where a continuation is scored (a boolean mask: the vocabulary projection
            # of every other position is never made; 22 judge candidates x 450 tokens x 49k
            # vocabulary were 2 GB of logits)
            keep = torch.zeros((len(chunk), width), dtype=torch.bool)
            for r, k in enumerate(chunk):
                keep[r, len(inputs[r]) - kept[k]:len(inputs[r])] = True
            first = (torch.cumsum(keep.sum(1), 0) - keep.sum(1)).tolist()  # row r's first kept logit
            with torch.inference_mode():
                kw = {} if like_hflm else {"attention_mask": mask.to(dev)}
                if self._slices_logits:
                    logits = self.model(input_ids=ids.to(dev), logits_to_keep=keep.to(dev), **kw).logits
                    logits = logits.reshape(-1, logits.shape[-1])
                else:
                    full = self.model(input_ids=ids.to(dev), **kw).logits
                    logits = full[keep.to(full.device)]
                for r, k in enumerate(chunk):
                    for m in members[k]:
                        n = n_conts[m]
                        if n == 0:
                            out[m] = (0.0, True)
                            continue
                        at = first[r] + kept[k] - n
                        lp = torch.log_softmax(logits[at:at + n].float(), dim=-1)
                        target = torch.tensor(seqs[m][-n:], device=lp.device)
                        out[m] = (float(lp.gather(1, target[:, None]).sum()),
                                  bool((lp.argmax(-1) == target).all()))

        kept = {k: max(n_conts[m] for m in members[k]) for k in lead}  # scored positions of each row
        per_position = 4 * self._vocab_size()  # bytes of one position's float32 logits
        budget = _logits_budget()
        tokens = _tokens_per_pass(self.device)

        def run(chunk: list[int]) -> None:
            """One batch, cut into forward passes whose kept logits fit LOGITS_BUDGET_BYTES (whole
            references for perplexity keep every position: 16 x 300 tokens x 49k were 0.9 GB) and,
            on a CPU, whose padded tokens fit TOKENS_PER_PASS (a pass's activations grow with its
            tokens, ~0.1 MB each for a 135M model; a CPU's time per token does not shrink with
            bigger passes). Rows come longest first, so a pass is as wide as its first row."""
            part: list[int] = []
            for k in chunk:
                if part and ((sum(kept[j] for j in part) + kept[k]) * per_position > budget
                             or (len(part) + 1) * (len(seqs[part[0]]) - 1) > tokens):
                    forward(part)
                    part = []
                part.append(k)
            forward(part)

        served = list(itertools.accumulate(len(members[k]) for k in order))  # requests done after each row
        self._batches(order, run, None if progress is None else
                      lambda rows_done, _: progress(served[rows_done - 1], len(seqs)))
        return out  # type: ignore[return-value]


LOGITS_BUDGET_BYTES = 256 * 2**20  # the scored positions' logits of one forward pass (HARNESS_LOGITS_BUDGET_MIB)


def _env_limit(var: str, what: str) -> float | None:
    """A per-pass limit set in the environment: None when ``var`` is unset, no limit (inf) for 0
    or less; a value that is not a number is a one-line error saying what to set."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    try:
        n = float(raw)
    except ValueError:
        raise HarnessError(f"{var}={raw!r} is not a number",
                           fix=f"Set it to {what} (0: no limit), or unset it.") from None
    return float("inf") if n <= 0 else n


def _logits_budget() -> float:
    """Bytes of kept logits one scoring forward pass may make: HARNESS_LOGITS_BUDGET_MIB (0: no
    limit, the old behaviour, for bench/demo.py's side-by-side), else LOGITS_BUDGET_BYTES."""
    mib = _env_limit("HARNESS_LOGITS_BUDGET_MIB", "MiB of logits per forward pass")
    return LOGITS_BUDGET_BYTES if mib is None else mib * 2**20


TOKENS_PER_PASS = 2048  # padded tokens of one scoring forward pass on a CPU (HARNESS_TOKENS_PER_PASS)


def _tokens_per_pass(device: str) -> float:
    """Padded tokens one scoring forward pass may hold: on a CPU, HARNESS_TOKENS_PER_PASS (0: no
    limit) or TOKENS_PER_PASS; on an accelerator no limit (the batch size and the out-of-memory
    halving bound it there, and bigger passes are faster)."""
    n = _env_limit("HARNESS_TOKENS_PER_PASS", "padded tokens per scoring forward pass")
    if n is None:
        return TOKENS_PER_PASS if str(device).startswith("cpu") else float("inf")
    return n


def _takes_logits_mask(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` as a boolean position mask (transformers
    5 causal LMs do, through ``slice_logits_to_keep``); other models get full logits, sliced here."""
    import inspect

    try:
        from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401 (the mask form exists)
    except ImportError:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False
