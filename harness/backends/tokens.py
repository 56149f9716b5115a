"""What every token-level backend shares, so that their numbers are the same: ``TokenEngine``.

A backend that sees token ids (transformers, vLLM) subclasses ``TokenEngine`` and supplies two
things: ``_score(seqs, n_conts)`` (sum log p of the last n tokens of each sequence, and whether
each is the argmax) and its own decoder. Everything that decides *which* tokens are scored or
generated lives here, once:

- prompt encoding (``_encode``: BOS added unless the rendered prompt already starts with it);
- lm-eval's context / continuation split (``_encode_pair``: encode the whole, split at the
  context's length; trailing context spaces move to the continuation);
- the rolling windows of ``rolling_nll`` (every token scored once, the first given a BOS/EOS
  prefix) and ``token_nll`` / ``loglikelihood`` on top of ``_score``;
- generation post-processing (``_to_generation``: new token ids -> ``Generation``: cut at EOS or
  padding, the finish reason, a character cut in half by the token limit dropped, stop strings, ``extract_response`` with the prompt format, special
  tokens removed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from harness.engine import NLL, Generation
from harness.models.prompts import cut_at_stops, drop_partial_char

log = logging.getLogger("harness.engine")

Progress = Callable[[int, int], None]


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give a tokenizer without a pad token its EOS (or UNK) as padding, left padding; every
    token backend does this so that ``_to_generation`` cuts at the same tokens."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "left"
    return tokenizer


class TokenEngine:
    """Base of the token-level engines (see the module docstring). Subclasses set ``tokenizer``
    and ``info`` and implement ``max_length``, ``_generation_eos`` and ``_score``."""

    tokenizer: Any

    # ------------------------------------------------------------------ supplied by a backend
    @property
    def max_length(self) -> int:
        """The most tokens of context a scored token may see (rolling windows, truncation)."""
        raise NotImplementedError

    @property
    def context_length(self) -> int:
        """The most tokens a prompt plus its new tokens may have."""
        return self.max_length

    def _generation_eos(self) -> Any:
        """The checkpoint's generation_config eos_token_id (an int, a list, or None)."""
        return None

    def _prepare(self) -> None:
        """Called before every request (the transformers engine activates its adapters here)."""

    def _score(self, seqs: list[list[int]], n_conts: list[int], progress: Progress | None = None, *,
               like_hflm: bool = False) -> list[tuple[float, bool]]:
        """For each token sequence: (sum log p of its last n tokens given what precedes them,
        whether each of those tokens is the argmax). ``like_hflm``: a hint that the requests
        are lm-eval's (a backend may batch them as HFLM does)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ tokens
    def _encode(self, text: str) -> list[int]:
        bos = self.tokenizer.bos_token
        add = not (bos and text.startswith(bos))  # a template that writes <bos> itself
        return list(self.tokenizer(text, add_special_tokens=add).input_ids)

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        for src in (self._generation_eos(), self.tokenizer.eos_token_id):
            if isinstance(src, int):
                ids.add(src)
            elif src:
                ids.update(int(i) for i in src)
        return sorted(ids)

    def _prefix_id(self) -> int:
        t = self.tokenizer
        for i in (t.bos_token_id, t.eos_token_id, t.pad_token_id):
            if i is not None:
                return int(i)
        return 0

    def _encode_pair(self, context: str, continuation: str, lm_eval_spaces: bool = True):
        """lm-eval's split: encode context+continuation once, split at the context's length."""
        if not context:
            return [self._prefix_id()], list(self.tokenizer(continuation, add_special_tokens=False).input_ids)
        if lm_eval_spaces:
            n = len(context) - len(context.rstrip())
            if n:
                continuation, context = context[-n:] + continuation, context[:-n]
        whole = self._encode(context + continuation)
        n_ctx = len(self._encode(context))
        return whole[:n_ctx], whole[n_ctx:]

    # ------------------------------------------------------------------ generation
    @staticmethod
    def _stops(fmt: Any, stop: Sequence[str]) -> list[str]:
        """The prompt format's stop strings and the caller's, in order, without repeats."""
        stops = list(dict.fromkeys([*(fmt.stop_strings if fmt else []), *stop]))
        return [s for s in stops if s]

    def _encode_prompts(self, prompts: Sequence[str], max_new_tokens: int) -> list[list[int]]:
        """Prompt token ids, each cut to its last tokens so that it fits with the new ones."""
        room = max(1, self.context_length - max_new_tokens)
        encoded = []
        for p in prompts:
            ids = self._encode(p)
            if len(ids) > room:
                log.warning("prompt of %d tokens cut to its last %d to fit the context", len(ids), room)
                ids = ids[-room:]
            encoded.append(ids)
        return encoded

    def _to_generation(self, row: list[int], *, fmt: Any, stops: list[str], eos_ids: list[int],
                       max_new_tokens: int) -> Generation:
        """New token ids (as decoded; an end token and what follows it is dropped) -> Generation."""
        from harness.models.prompts import extract_response

        tok = self.tokenizer
        ends = set(eos_ids) | {tok.pad_token_id}
        cut = next((j for j, t in enumerate(row) if t in ends), None)
        content = row if cut is None else row[:cut]
        raw = tok.decode(content, skip_special_tokens=False)
        if cut is None and len(row) >= max_new_tokens:  # cut by the limit: maybe inside a character
            raw = drop_partial_char(raw)
        hit = next((s for s in stops if s in raw), None)
        if hit is not None:
            finish, n = "stop", len(content)
        elif cut is not None:
            finish, n = "eos", cut + 1
        else:
            finish, n = ("length" if len(row) >= max_new_tokens else "eos"), len(row)
        text = extract_response(raw, fmt, stop=stops) if fmt else cut_at_stops(raw, stops).strip()
        for s in (s for s in getattr(tok, "all_special_tokens", []) if s):
            text = text.replace(s, "")
        return Generation(text=text.strip(), raw=raw, n_tokens=n, truncated=finish == "length", finish=finish)

    # ------------------------------------------------------------------ scoring
    def loglikelihood(self, requests: Sequence[tuple[str, str]],
                      progress: Progress | None = None) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), continuation is greedy) per request; tokenized and
        split as lm-eval's HFLM does (same numbers)."""
        self._prepare()
        pairs = [self._encode_pair(c, x) for c, x in requests]
        return self._score([c + x for c, x in pairs], [len(x) for _, x in pairs], progress, like_hflm=True)

    def token_nll(self, prompts: Sequence[str], targets: Sequence[str]) -> list[NLL]:
        """NLL of each target given its prompt; prompt tokens are not scored."""
        if len(prompts) != len(targets):
            raise ValueError("token_nll: prompts and targets differ in length")
        self._prepare()
        pairs = [self._encode_pair(p, t, lm_eval_spaces=False) for p, t in zip(prompts, targets)]
        scores = self._score([c + x for c, x in pairs], [len(x) for _, x in pairs])
        return [NLL(-lp, len(x), len(t.encode("utf-8"))) for (lp, _), (_, x), t in zip(scores, pairs, targets)]

    def rolling_nll(self, texts: Sequence[str], max_length: int | None = None,
                    stride: int | None = None) -> list[NLL]:
        """Sliding-window NLL of raw text (the HF perplexity recipe). Every token is scored: the
        first one given a BOS/EOS prefix (as lm-eval's loglikelihood_rolling); windows of
        ``max_length`` tokens move by ``stride`` (default max_length // 2) and score only tokens
        no earlier window scored, each window (the last one too) with a full ``max_length`` of
        context where the text has it. With ``stride == max_length`` these are the windows of
        lm-eval's loglikelihood_rolling."""
        self._prepare()
        L = min(max_length or self.max_length, self.max_length)
        stride = stride or max(1, L // 2)
        if not 1 <= stride <= L:
            raise ValueError(f"rolling_nll: stride must be in 1..{L}")
        seqs, n_conts, owner = rolling_windows(
            [[self._prefix_id()] + list(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts],
            L, stride)
        scores = self._score(seqs, n_conts)
        out = [NLL(0.0, 0, len(t.encode("utf-8"))) for t in texts]
        for (lp, _), n, i in zip(scores, n_conts, owner):
            out[i].nll_sum -= lp
            out[i].n_tokens += n
        return out


def rolling_windows(token_lists: list[list[int]], L: int, stride: int):
    """(sequences, tokens scored at the end of each, index of the text each belongs to) for
    ``rolling_nll``: each list starts with its prefix token, which is never scored."""
    seqs, n_conts, owner = [], [], []
    for i, toks in enumerate(token_lists):
        n = len(toks) - 1
        prev_end, begin = 0, 0
        while prev_end < n:
            end = min(begin + L, n)
            seqs.append(toks[max(0, end - L):end + 1])
            n_conts.append(end - prev_end)
            owner.append(i)
            prev_end = end
            begin += stride
    return seqs, n_conts, owner
