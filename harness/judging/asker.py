"""Asking the judge: one question with retries, re-asks and the cache; many questions at once.

One question (a rendered prompt and a seed) goes:
  disk cache? -> an in-process judge with log-probs scores every allowed answer (no reply) ->
  otherwise backend.reply() with exponential-backoff retries on transport errors ->
  the verdict read from the reply's token log-probs when the server gave them, else parsed
  from its text (JSON, then tolerant) -> re-ask with a correction message when unparseable ->
  cache only successes. ``Outcome.meta["method"]`` says which: ``logprob`` or ``text``.
After ``give_up_after`` questions in a row failed in transport, the rest are not sent (the
server is gone). A question that fails comes back as an ``Outcome`` with ``value`` None and the
error and raw replies kept; pointwise.py and pairwise.py turn Outcomes into Verdicts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError

from .cache import JudgeCache
from .definition import JudgeDefinition
from .logprob import Scored, score_from_tokens, verdict_from_tokens
from .parse import Parsed, parse_preference, parse_score
from .protocol import JudgeBackend, JudgeRequestError, LogprobsUnavailable, Reply, TransientJudgeError

ProgressCallback = Callable[[int, int], None]  # (done, total)


@dataclass
class Outcome:
    """The result of one question: the parsed value (a score, or "A" / "B" / "tie"), or None."""

    value: float | str | None
    rationale: str = ""
    raws: list[str] = field(default_factory=list)
    error: str | None = None
    requests: int = 0
    cached: bool = False
    how: str = ""
    meta: dict = field(default_factory=dict)  # method (logprob | text), distribution, expected, mass


class Asker:
    """Asks one judge through one backend; safe to share between threads."""

    def __init__(
        self,
        defn: JudgeDefinition,
        backend: JudgeBackend,
        cache: JudgeCache | None,
        retries: int,
        reasks: int,
        backoff: float,
        max_backoff: float,
        give_up_after: int = 0,
    ):
        self.defn = defn
        self.backend = backend
        self.cache = cache
        self.retries = max(0, int(retries))
        self.reasks = max(0, int(reasks))
        self.backoff = max(0.0, float(backoff))
        self.max_backoff = float(max_backoff)
        self.schema = defn.schema()
        self._lock = threading.Lock()
        self.requests = 0
        # circuit breaker: after this many units in a row failed in transport (no success in
        # between), the remaining units are not sent (the server is gone); 0 = never
        self.give_up_after = int(give_up_after)
        self._failed_in_row = 0
        self._last_transport_error = ""

    def _parse(self, text: str) -> Parsed:
        if self.defn.kind == "pointwise":
            return parse_score(text, self.defn.lo, self.defn.hi)
        return parse_preference(text)

    def _from_tokens(self, reply: Reply) -> Scored | None:
        if not reply.tokens:
            return None
        if self.defn.kind == "pointwise":
            return score_from_tokens(reply.tokens, self.defn.lo, self.defn.hi)
        return verdict_from_tokens(reply.tokens)

    def _send(self, convo: list[dict], seed: int) -> Reply:
        if hasattr(self.backend, "reply"):
            return self.backend.reply(convo, self.schema, seed=seed)
        return Reply(self.backend.complete(convo, self.schema, seed=seed))

    def _complete(self, convo: list[dict], seed: int) -> tuple[Reply | None, int, str | None, bool]:
        """(reply, requests made, error, failed in transport). Transport errors are retried
        with exponential backoff."""
        tries = 0

        def once() -> Reply:
            nonlocal tries
            tries += 1
            with self._lock:
                self.requests += 1
            return self._send(convo, seed)

        try:
            reply, _ = with_retries(once, retries=self.retries, backoff=self.backoff,
                                    max_backoff=self.max_backoff, transient=(TransientJudgeError,))
            return reply, tries, None, False
        except TransientJudgeError as e:
            return None, tries, f"{e} (gave up after {tries} tries)", True
        except JudgeRequestError as e:
            return None, tries, str(e), False

    def _note(self, transport_error: str | None) -> None:
        with self._lock:
            if transport_error is None:
                self._failed_in_row = 0
            else:
                self._failed_in_row += 1
                self._last_transport_error = transport_error

    def _tripped(self) -> str | None:
        with self._lock:
            if self.give_up_after and self._failed_in_row >= self.give_up_after:
                return (
                    f"not sent: the judge failed {self._failed_in_row} times in a row "
                    f"(last: {self._last_transport_error})"
                )
        return None

    def ask(self, messages: list[dict], lang: str, seed: int) -> Outcome:
        """One question: from the cache, or asked (with retries and re-asks) and cached."""
        key = None
        if self.cache is not None:
            key = self.cache.key(self.defn, self.backend, messages, seed)
            hit = self.cache.get(key)
            if hit is not None:
                return Outcome(
                    hit["value"],
                    hit.get("rationale", ""),
                    [hit["raw"]] if hit.get("raw") else [],
                    None,
                    0,
                    True,
                    hit.get("how", ""),
                    hit.get("meta") or {"method": "text"},
                )
        if getattr(self.backend, "scores_logprobs", False):
            scored = self._score_candidates(messages, key)
            if scored is not None:
                return scored
            if self.cache is not None:  # log-prob scoring just turned off: text replies have their own key
                key = self.cache.key(self.defn, self.backend, messages, seed)
        convo = list(messages)
        raws: list[str] = []
        requests = 0
        last_error = None
        for _ in range(self.reasks + 1):
            tripped = self._tripped()
            if tripped:
                return Outcome(None, "", raws, tripped, requests)
            reply, n, err, transport = self._complete(convo, seed)
            requests += n
            self._note(err if transport else None)
            if reply is None:
                return Outcome(None, "", raws, err, requests)
            text = reply.text
            raws.append(text)
            parsed = self._parse(text)
            scored = self._from_tokens(reply)
            if scored is not None:
                meta = scored.meta()
                if parsed.ok:
                    meta["text_value"] = parsed.value
                out = Outcome(scored.value, parsed.rationale, raws, None, requests, False, "logprob", meta)
                self._store(key, out, text)
                return out
            if parsed.ok:
                out = Outcome(parsed.value, parsed.rationale, raws, None, requests, False, parsed.how,
                              {"method": "text"})
                self._store(key, out, text)
                return out
            last_error = parsed.error
            convo = convo + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": self.defn.reask_message(lang)},
            ]
        return Outcome(None, "", raws, f"unparseable after {len(raws)} replies: {last_error}", requests)

    def _score_candidates(self, messages: list[dict], key: str | None) -> Outcome | None:
        """An in-process judge: the verdict from the probabilities of every allowed answer
        (None: its engine has no log-probs; it is asked for text from now on)."""
        with self._lock:
            self.requests += 1
        try:
            scored = self.backend.score(messages, self.defn.kind, self.defn.lo, self.defn.hi)
        except LogprobsUnavailable:
            self.backend.scores_logprobs = False
            return None
        except JudgeRequestError as e:
            return Outcome(None, "", [], str(e), 1)
        out = Outcome(scored.value, "", [], None, 1, False, "logprob", scored.meta())
        self._store(key, out, "")
        return out

    def _store(self, key: str | None, out: Outcome, raw: str) -> None:
        if key is None or self.cache is None:
            return
        self.cache.put(
            key,
            {
                "value": out.value,
                "rationale": out.rationale,
                "raw": raw,
                "how": out.how,
                "meta": out.meta,
                "judge": self.defn.name,
                "backend": self.backend.spec,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )


def make_asker(
    defn: JudgeDefinition,
    kind: str,
    backend: JudgeBackend | None,
    *,
    cache_dir: str | os.PathLike | None,
    use_cache: bool,
    concurrency: int,
    repeats: int,
    retries: int,
    reasks: int,
    backoff: float,
    max_backoff: float,
    give_up_after: int | None,
) -> Asker:
    """Check the arguments of judge_pointwise / judge_pairwise and build their Asker.

    give_up_after None -> max(8, 2 * concurrency); 0 = never give up.
    """
    if defn.kind != kind:
        raise HarnessError(
            f"judge '{defn.name}' is {defn.kind}, not {kind}",
            fix=f"Use judge_{defn.kind}() for it, or pick a {kind} judge.",
        )
    if backend is None:
        raise HarnessError(
            "no judge backend (--judge none)", fix="Pass --judge ollama:<model> or openai:<model>."
        )
    if concurrency < 1 or repeats < 1:
        raise HarnessError(f"judge concurrency and repeats must be >= 1 (got {concurrency}, {repeats})")
    cache = JudgeCache(cache_dir) if use_cache else None
    give_up = max(8, 2 * int(concurrency)) if give_up_after is None else int(give_up_after)
    return Asker(defn, backend, cache, retries, reasks, backoff, max_backoff, give_up)


def repeat_seed(backend: JudgeBackend, repeat: int) -> int:
    """The seed of repeat ``repeat`` (0, 1, ...): the backend's seed + repeat."""
    return int(getattr(backend, "seed", 0) or 0) + repeat


def with_retries(call: Callable[[], Any], *, retries: int, backoff: float, max_backoff: float,
                 transient: tuple[type[BaseException], ...]) -> tuple[Any, int]:
    """(call(), tries): call again after ``backoff * 2**i`` seconds (at most ``max_backoff``)
    while it raises one of ``transient``; after ``retries`` extra tries the last error is raised.
    The retry policy of the judge and of the served-model engines."""
    for attempt in range(max(0, int(retries)) + 1):
        try:
            return call(), attempt + 1
        except transient:
            if attempt >= retries:
                raise
            time.sleep(min(backoff * (2**attempt), max_backoff))
    raise AssertionError("unreachable")


def map_concurrently(
    units: list, fn: Callable, concurrency: int, progress: ProgressCallback | None
) -> list:
    """fn(unit) for every unit on a thread pool; results in unit order; progress on this thread."""
    total = len(units)
    results: list = [None] * total
    if progress:
        progress(0, total)
    if total == 0:
        return results
    workers = max(1, min(int(concurrency), total))
    if workers == 1:
        for i, u in enumerate(units):
            results[i] = fn(u)
            if progress:
                progress(i + 1, total)
        return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
        futures = {pool.submit(fn, u): i for i, u in enumerate(units)}
        for done, fut in enumerate(as_completed(futures), start=1):
            results[futures[fut]] = fut.result()
            if progress:
                progress(done, total)
    return results
