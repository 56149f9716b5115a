"""The fan-out Engine: ``ShardedEngine`` serves one model through an executor, in chunks.

Every request list (``generate`` prompts, ``loglikelihood`` pairs, ``token_nll`` /
``rolling_nll`` texts) is cut into chunks of ``chunk_size`` and the chunks go to the executor:
in this process for a plain run, across the Ray workers for a cluster run; the answers come back
in order. Chunks of a fixed size make the batches, and so every number, the same on any number
of workers, which is why a plain run chunks too. lm-eval benchmarks and the in-process judge
reach models through it, so they are data-parallel on a cluster.

``ShardedPool`` is the ModelPool the stages see: ``engine(name)`` is a ShardedEngine (a served
model's own client, which a server already spreads), everything else is the local pool's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.cluster.calls import Call, chunks
from harness.engine import NLL, EngineInfo, Generation


class ShardedEngine:
    """An Engine for model ``name`` whose work runs on ``executor`` in chunks of ``chunk_size``."""

    def __init__(self, name: str, pool: ShardedPool):
        self.name = name
        self._pool = pool
        self.batch_size: int | str | None = None  # set by the lm-eval adapter for one benchmark
        self.auto_batch: bool | None = None
        self._info: EngineInfo | None = None
        self._max_length: int | None = None

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            self._info = self._pool.executor.map([Call(self.name, "info")])[0]
        return self._info

    @property
    def max_length(self) -> int | None:
        if self._max_length is None:
            self._max_length = self._pool.executor.map([Call(self.name, "max_length")])[0]
        return self._max_length

    def _fan_out(self, method: str, columns: Sequence[Sequence[Any]], kwargs: dict[str, Any],
                 progress: Callable[[int, int], None] | None = None) -> list:
        n = len(columns[0])
        parts = chunks(n, self._pool.chunk_size)
        batch = None if self.batch_size in (None, "auto") else int(self.batch_size)
        calls = [Call(self.name, method, tuple(list(c[a:b]) for c in columns), dict(kwargs), batch_size=batch,
                      auto_batch=self.auto_batch) for a, b in parts]
        done = [0]

        def tick(i: int, _result: Any) -> None:
            done[0] += parts[i][1] - parts[i][0]
            if progress is not None:
                progress(done[0], n)

        results = self._pool.executor.map(calls, on_done=tick, step=progress)  # (batches, when local)
        return [x for part in results for x in part]

    def generate(self, prompts: Sequence[str], *, fmt: Any = None, max_new_tokens: int = 128,
                 temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> list[Generation]:
        kw = {"fmt": fmt, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
              "stop": list(stop), "seed": seed}
        return self._fan_out("generate", [prompts], kw, progress)

    def loglikelihood(self, requests: Sequence[tuple[str, str]],
                      progress: Callable[[int, int], None] | None = None) -> list[tuple[float, bool]]:
        return self._fan_out("loglikelihood", [list(requests)], {}, progress)

    def token_nll(self, prompts: Sequence[str], targets: Sequence[str]) -> list[NLL]:
        if len(prompts) != len(targets):
            raise ValueError("token_nll: prompts and targets differ in length")
        return self._fan_out("token_nll", [prompts, targets], {})

    def rolling_nll(self, texts: Sequence[str], max_length: int | None = None,
                    stride: int | None = None) -> list[NLL]:
        return self._fan_out("rolling_nll", [texts], {"max_length": max_length, "stride": stride})


class ShardedPool:
    """A ModelPool whose engines fan out through ``executor`` (see the module docstring)."""

    def __init__(self, pool: Any, executor: Any, chunk_size: int):
        self.pool = pool
        self.executor = executor
        self.chunk_size = int(chunk_size)
        self._sharded: dict[str, ShardedEngine] = {}
        self._described: dict[str, dict[str, Any]] = {}

    def engine(self, name: str, batch_size: int | str | None = None):
        r = self.pool.resolved.get(name)
        if r is None or r.kind == "served" or batch_size is not None:
            return self.pool.engine(name, batch_size)
        if not getattr(self.executor, "remote", False):
            self.pool.engine(name)  # loaded now, here (a load error says so before any shard runs)
        if name not in self._sharded:
            self._sharded[name] = ShardedEngine(name, self)
        return self._sharded[name]

    def describe(self, name: str) -> dict[str, Any]:
        """How ``name`` is served; on a cluster, as a worker loaded it (dtype, device, parameters)."""
        if not getattr(self.executor, "remote", False) or self.pool.resolved[name].kind == "served":
            return self.pool.describe(name)
        if name not in self._described:
            self._described[name] = {**self.pool.describe(name),
                                     **self.executor.map([Call(name, "describe")])[0]}
        return dict(self._described[name])

    def __getattr__(self, attr: str) -> Any:  # format, tokenizer, system_prompt, hf_engine, release ...
        return getattr(self.pool, attr)
