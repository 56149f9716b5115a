"""lm-eval's ``LM`` over any ``harness.engine.Engine``: the one way lm-eval tasks reach a model.

lm-eval asks three questions and each is one Engine call, so a backend that implements the
Engine (transformers today; vLLM or a served model next) runs every lm-eval task without being
wired into lm-eval itself:

- ``loglikelihood``          -> ``Engine.loglikelihood``  (multiple-choice tasks: MMLU, HellaSwag)
- ``loglikelihood_rolling``  -> ``Engine.rolling_nll``    (perplexity tasks), windows of the
                                engine's context length, as lm-eval's HFLM makes them
- ``generate_until``         -> ``Engine.generate(fmt=None, stop=until)``, cut at the stop
                                strings as lm-eval does

``apply_chat_template`` renders lm-eval's chat history with the model's chat prompt format (the
model pool's decision, ``PromptFormat.render_messages``); it is needed only for benchmarks with
``apply_chat_template: true``.

``progress`` (a ``RequestCounter``) counts lm-eval's requests as the engine finishes each batch,
so the run's progress display shows a benchmark moving (done / total requests) instead of one
line for minutes.

The transformers engine tokenizes, splits, batches and scores log-likelihoods as lm-eval's
``HFLM`` does, so accuracies and per-choice log-likelihoods equal a plain HFLM run
(tests/test_benchmarks.py checks it). This module imports lm_eval at the top: import it only
where an evaluation runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lm_eval.api.model import LM

from harness.models.prompts import cut_at_stops

DEFAULT_MAX_GEN_TOKS = 256  # HFLM's max_gen_toks when a task does not set one


class RequestCounter:
    """lm-eval's requests done / total across every engine call of one benchmark run, reported
    to ``report(done, total)`` (a progress bar's update). lm-eval hands over each request type
    (log-likelihoods, then generations...) in one call, so the total grows as they come."""

    def __init__(self, report: Callable[[int, int], None] | None = None):
        self.report = report
        self.done = 0
        self.total = 0

    @contextmanager
    def call(self, n: int) -> Iterator[Callable[[int, int], None] | None]:
        """Counting for one engine call over ``n`` requests: yields the ``progress`` callback to
        pass to the engine (its (done, of) are scaled to ``n``), or None when nothing listens."""
        if self.report is None:
            yield None
            return
        base = self.done
        self.total += n
        self.report(base, self.total)

        def step(done: int, of: int) -> None:
            self.report(base + min(n, done * n // max(1, of)), self.total)

        yield step
        self.done = base + n
        self.report(self.done, self.total)


def _progress_kw(step: Callable[[int, int], None] | None) -> dict[str, Any]:
    return {} if step is None else {"progress": step}


class EngineLM(LM):
    """lm-eval's model interface served by one Engine.

    ``batch_size``: rows per forward pass for this evaluation (a benchmark's ``batch_size``);
    engines that batch themselves (served models) ignore it. ``chat_format``: a PromptFormat
    whose ``render_messages`` gives chat-templated text (only for ``apply_chat_template``).
    ``progress``: a ``RequestCounter`` (shared by the EngineLMs of one benchmark stage).
    """

    def __init__(self, engine: Any, *, chat_format: Any = None, batch_size: int | str = 16, name: str = "model",
                 progress: RequestCounter | None = None):
        super().__init__()
        self.engine = engine
        self.progress = progress or RequestCounter()
        self.chat_format = chat_format
        self.batch_size = batch_size
        self.name = name
        self._chat_rendered = False  # apply_chat_template made this evaluation's prompts

    # ------------------------------------------------------------------ scoring
    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [(str(r.args[0]), str(r.args[1])) for r in requests]
        with _rows_per_batch(self.engine, self.batch_size), self.progress.call(len(pairs)) as step:
            scores = self.engine.loglikelihood(pairs, **_progress_kw(step))
        out = [(float(lp), bool(greedy)) for lp, greedy in scores]
        for pair, answer in zip(pairs, out):
            self.cache_hook.add_partial("loglikelihood", pair, answer)
        return out

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        texts = [str(r.args[0]) for r in requests]
        # lm-eval's windows: the whole context length, each token scored once with the most context
        window = getattr(self.engine, "max_length", None)
        with _rows_per_batch(self.engine, self.batch_size), self.progress.call(len(texts)):
            nlls = self.engine.rolling_nll(texts, max_length=window, stride=window)
        out = [-n.nll_sum for n in nlls]
        for text, total in zip(texts, out):
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
        return out

    # ------------------------------------------------------------------ generation
    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        groups: dict[str, list[int]] = {}  # one engine call per distinct set of generation kwargs
        for i, r in enumerate(requests):
            groups.setdefault(json.dumps(r.args[1], sort_keys=True, default=str), []).append(i)
        out = [""] * len(requests)
        for idx in groups.values():
            gen_kwargs = requests[idx[0]].args[1]
            stop, kw = generation_settings(gen_kwargs)
            # a server-side chat format's prompts are messages for the server's chat API
            fmt = self.chat_format if self._chat_rendered and _server_chat(self.chat_format) else None
            with _rows_per_batch(self.engine, self.batch_size), self.progress.call(len(idx)) as step:
                gens = self.engine.generate([str(requests[i].args[0]) for i in idx], fmt=fmt, stop=stop, **kw,
                                            **_progress_kw(step))
            for i, g in zip(idx, gens):
                out[i] = cut_at_stops(g.raw, stop)
                self.cache_hook.add_partial("generate_until", (requests[i].args[0], gen_kwargs), out[i])
        return out

    # ------------------------------------------------------------------ chat templates
    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        fmt = self._chat_format()
        self._chat_rendered = True
        if add_generation_prompt or not chat_history:
            return fmt.render_messages(chat_history)
        if _server_chat(fmt):
            from harness.errors import HarnessError

            raise HarnessError(f"{self.name}: this benchmark continues an assistant message (gen_prefix), which a "
                               "server's chat API cannot do", where="benchmarks",
                               fix="Set `prompt_format:` on the served model so the template is rendered here.")
        # a task's gen_prefix: lm-eval continues the last (assistant) message instead of closing it
        *earlier, last = chat_history
        return fmt.render_messages(earlier) + str(last.get("content", ""))

    @property
    def tokenizer_name(self) -> str:  # lm-eval keys its request cache on it
        fmt = self.chat_format
        return f"{self.name}-{fmt.template_hash}" if fmt is not None else self.name

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.chat_format.template if chat_template and self.chat_format is not None else ""

    def _chat_format(self):
        if self.chat_format is None:
            from harness.errors import HarnessError

            raise HarnessError(f"{self.name}: apply_chat_template needs the model's chat prompt format",
                               where="benchmarks", fix="Pass chat_format to run_benchmarks.")
        return self.chat_format


def _server_chat(fmt: Any) -> bool:
    """A format whose prompts are JSON chat messages for a server's chat API (backends/served.py)."""
    return getattr(fmt, "name", None) == "server-chat"


def generation_settings(gen_kwargs: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """lm-eval's generation kwargs -> (stop strings, Engine.generate keywords), read as HFLM reads
    them: ``until`` (a string or a list), ``max_gen_toks`` (or its aliases, default 256), and
    sampling only with ``do_sample`` (or a temperature > 0 when do_sample is not given)."""
    kw = dict(gen_kwargs or {})
    until = kw.get("until") or []
    stop = [until] if isinstance(until, str) else [str(s) for s in until]
    max_new = next((kw[k] for k in ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")
                    if kw.get(k) is not None), DEFAULT_MAX_GEN_TOKS)
    temperature = float(kw.get("temperature") or 0.0)
    do_sample = kw.get("do_sample")
    if do_sample is None:
        do_sample = temperature > 0
    settings = {"max_new_tokens": int(max_new), "temperature": temperature if do_sample else 0.0}
    if do_sample and kw.get("top_p") is not None:
        settings["top_p"] = float(kw["top_p"])
    return stop, settings


@contextmanager
def _rows_per_batch(engine: Any, batch_size: int | str) -> Iterator[None]:
    """Run ``engine`` with the benchmark's batch size while lm-eval calls it. Batches decide the
    padding and so the last bits of the numbers: the HF engine makes HFLM's batches only with
    HFLM's batch size. "auto" (and an engine without a ``batch_size``) keeps the engine's own."""
    if batch_size == "auto" or not hasattr(engine, "batch_size"):
        yield
        return
    saved = {k: getattr(engine, k) for k in ("batch_size", "auto_batch") if hasattr(engine, k)}
    engine.batch_size = int(batch_size)
    if "auto_batch" in saved:
        engine.auto_batch = False  # a fixed batch size: out of memory is an error, as in HFLM
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(engine, k, v)
