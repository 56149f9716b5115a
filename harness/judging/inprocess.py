"""The in-process judge (``hf:<model spec>``): a model the run loads, reached through callables
the judge stage injects (harness/stages/judge.py ``hf_callables``).

* ``loglikelihood([(context, continuation), ...]) -> [log p]`` (the Engine's): with it the
  judge is scored from probabilities (``scoring: auto``): the prompt ends where the reply
  writes its score and every allowed answer is scored (harness/judging/logprob.py). No
  generation, and no verdict is unparseable.
* ``generate(prompts) -> replies`` and ``format_chat(messages) -> prompt``: free-text judging
  (``scoring: text``, or no ``loglikelihood``), read by the tolerant parser. There is no
  constrained decoding: lm-format-enforcer 0.11.3 does not import with transformers 5, and
  outlines 1.3.3 took minutes per JSON schema on a CPU (docs/judging.md).

Concurrent callers (the asker's threads) are micro-batched into one Engine call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from harness.errors import HarnessError

from .logprob import Scored, candidates, from_candidates
from .protocol import JudgeRequestError, Messages, decoding_options


class _MicroBatcher:
    """Collect prompts submitted from many threads into one ``fn(prompts)`` call.

    The first thread to arrive while nothing runs becomes the leader: it waits ``max_wait``
    seconds for others to join, runs up to ``max_batch`` prompts at once, and keeps draining
    until nothing is pending. Everyone else just waits for its own result.
    """

    def __init__(self, fn: Callable[[list], list], max_batch: int, max_wait: float):
        self.fn = fn
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait))
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, Future]] = []
        self._busy = False
        self.calls = 0
        self.batch_sizes: list[int] = []

    def submit(self, prompt: Any) -> Any:
        return self.submit_many([prompt])[0]

    def submit_many(self, prompts: list) -> list:
        """Several requests of one caller; they may be split over batches."""
        futs: list[Future] = [Future() for _ in prompts]
        with self._lock:
            self._pending.extend(zip(prompts, futs))
            lead = not self._busy
            if lead:
                self._busy = True
        if lead:
            self._drain()
        return [f.result() for f in futs]

    def _drain(self) -> None:
        first = True
        while True:
            if first and self.max_wait:
                time.sleep(self.max_wait)
            first = False
            with self._lock:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if not batch:
                    self._busy = False
                    return
            self.calls += 1
            self.batch_sizes.append(len(batch))
            try:
                outs = list(self.fn([p for p, _ in batch]))
                if len(outs) != len(batch):
                    raise JudgeRequestError(
                        f"the in-process judge returned {len(outs)} results for {len(batch)} requests"
                    )
            except Exception as e:  # noqa: BLE001 - hand any failure to every waiter of this batch
                for _, fut in batch:
                    fut.set_exception(e)
            else:
                for (_, fut), out in zip(batch, outs):
                    fut.set_result(out)


class HFBackend:
    """An in-process judge model; its callables come from the run stage.

    ``generate(prompts: list[str]) -> list[str]`` returns only the newly generated text (greedy);
    ``format_chat(messages) -> str`` applies the judge's chat template with the generation
    prompt; ``loglikelihood(requests) -> [float]`` (optional) the log-probability of each
    continuation given its context. options: ``scoring`` auto | text, ``batch_size``,
    ``batch_wait``.
    """

    kind = "hf"

    def __init__(
        self,
        model: str,
        generate: Callable[[list[str]], list[str]],
        format_chat: Callable[[Messages], str],
        options: dict[str, Any] | None = None,
    ):
        options = dict(options or {})
        if not model:
            raise HarnessError(
                "judge backend 'hf:' names no model", fix="Use e.g. --judge hf:zoo:smollm2-135m-instruct."
            )
        if not callable(generate) or not callable(format_chat):
            raise HarnessError(
                f"judge backend 'hf:{model}' needs generate and format_chat callables",
                fix="The run stage passes them in make_backend options.",
            )
        self.model = model
        self.spec = f"hf:{model}"
        self.format_chat = format_chat
        batch = int(options.get("batch_size", 8))
        wait = float(options.get("batch_wait", 0.02))
        # every model call (generate, loglikelihood) runs on ONE thread: the judge's request threads
        # each allocating the model's activations in their own malloc arena grew memory by GBs
        # (8 threads: 5.9 GB after 16 log-prob items; one thread: 1.9 GB)
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-model")
        self.batcher = _MicroBatcher(lambda prompts: self._model_thread.submit(generate, prompts).result(),
                                     batch, wait)
        loglikelihood = options.get("loglikelihood")
        scoring = str(options.get("scoring", "auto"))
        if scoring not in ("auto", "text"):
            raise HarnessError(f"judge option scoring={scoring!r} is not supported", fix="Use auto or text.")
        self.scores_logprobs = callable(loglikelihood) and scoring == "auto"
        # one item's continuations (0-100: 11 scores x 2 endings) are scored as one call, never mixed
        # with other items' (a batch made of whatever arrived together would move the numbers in
        # the last digits from run to run)
        self.loglikelihood = loglikelihood if self.scores_logprobs else None
        self.decoding = decoding_options(options)

    def check(self) -> None:
        return None  # the model is loaded by the run stage; nothing to reach

    def identity(self, seed: int | None = None) -> dict[str, Any]:
        # greedy decoding and log-probs: the seed does not change the reply, so it is not in the key
        out: dict[str, Any] = {"backend": "hf", "model": self.model, "options": self.decoding}
        out["scoring"] = "logprob" if self.scores_logprobs else "text"
        return out

    def complete(self, messages: Messages, schema: dict | None = None, seed: int | None = None) -> str:
        prompt = self.format_chat(messages)
        try:
            return self.batcher.submit(prompt)
        except JudgeRequestError:
            raise
        except Exception as e:  # noqa: BLE001 - a model failure becomes a missing verdict
            raise JudgeRequestError(f"in-process judge failed: {type(e).__name__}: {e}") from None

    def score(self, messages: Messages, kind: str, lo: int, hi: int) -> Scored:
        """The verdict from the probabilities of every allowed answer, the reply started with
        ``{"score": `` / ``{"winner": "`` (harness/judging/logprob.py)."""
        prefix, cands = candidates(kind, lo, hi)
        try:
            context = self.format_chat(messages) + prefix
            assert self.loglikelihood is not None
            requests = [(context, cont) for _, cont in cands]
            lps = self._model_thread.submit(self.loglikelihood, requests).result()
        except JudgeRequestError:
            raise
        except Exception as e:  # noqa: BLE001 - a model failure becomes a missing verdict
            raise JudgeRequestError(f"in-process judge failed: {type(e).__name__}: {e}") from None
        return from_candidates(kind, [(label, float(lp)) for (label, _), lp in zip(cands, lps)])
