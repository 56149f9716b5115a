"""Where calls run: ``LocalExecutor`` (this process, one call after another: a plain run) and the
interface the Ray executor (``harness/cluster/ray_workers.py``) shares with it.

``map(calls, on_done=...)`` returns the results in the order of ``calls`` and calls
``on_done(index, result)`` on the driver as each finishes (the generate stage writes a shard
there: the driver is the run directory's one writer). One progress bar per ``map`` with a
description: here, requests done / total as the engine finishes each batch; on Ray workers,
calls (shards) done / total and each worker's rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.cluster.calls import Call, run_call

OnDone = Callable[[int, Any], None]


class Rates:
    """Calls done per worker and their rate, for the progress display."""

    def __init__(self, workers: int):
        self.t0 = time.perf_counter()
        self.done = [0] * max(1, workers)

    def add(self, worker: int) -> None:
        self.done[worker] += 1

    def describe(self, what: str) -> str:
        if len(self.done) == 1:
            return what
        dt = max(1e-9, time.perf_counter() - self.t0)
        return what + " [" + ", ".join(f"w{i} {n / dt:.2f}/s" for i, n in enumerate(self.done)) + "]"


class LocalExecutor:
    """Runs every call in this process on ``pool`` (a ModelPool), in order."""

    workers = 1
    remote = False

    def __init__(self, pool: Any, progress: Any = None):
        self.pool = pool
        self.progress = progress

    def map(self, calls: Sequence[Call], *, on_done: OnDone | None = None, description: str | None = None,
            step: Callable[[int, int], None] | None = None) -> list:
        """``step(done, total)``: requests done across ``calls`` as the engine finishes each batch
        (a caller with its own progress; ``description`` makes a bar of the run's display)."""
        out: list[Any] = [None] * len(calls)
        sizes = [_size(c) for c in calls]
        what = description and f"{description}, {sum(sizes)} requests in {len(calls)} shards"
        with _bar(self.progress, what, sum(sizes), shards=False) as bar:
            def update(d: int) -> None:
                bar(d)
                if step is not None:
                    step(d, sum(sizes))

            done = 0
            for i, call in enumerate(calls):
                def inner(d: int, n: int, base: int = done, size: int = sizes[i]) -> None:
                    update(base + min(size, d * size // max(1, n)))

                out[i] = run_call(self.pool, call, progress=inner)
                done += sizes[i]
                if on_done is not None:
                    on_done(i, out[i])
                update(done)
        return out

    def close(self) -> None:
        pass


class _NoBar:
    def __enter__(self):
        return lambda *a, **k: None

    def __exit__(self, *exc):
        return False


def _size(call: Call) -> int:
    """Requests in a call (its first argument's length: prompts, pairs, texts), else 1."""
    first = call.args[0] if call.args else None
    return len(first) if isinstance(first, (list, tuple)) and first else 1


def _bar(progress: Any, description: str | None, total: int, *, shards: bool = True):
    if progress is None or description is None or total == 0:
        return _NoBar()
    return progress.bar(f"{description} ({total} shards)" if shards else description, total)

