"""The unit of work a worker runs: one ``Call`` (one Engine method on one model's requests).

A call is plain data (model name, method, arguments), so it travels to a Ray actor and back by
pickling; ``run_call(pool, call)`` runs it on a ModelPool, the same code in the driver's own
process (a plain run) and in every worker. Requests are cut into chunks of a fixed size
(``chunks``), never 1/N of them, so what one chunk computes, and so every number, is the same
on 1 worker or 16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("generate", "loglikelihood", "token_nll", "rolling_nll", "generate_scored", "info", "describe",
           "max_length")


@dataclass(frozen=True)
class FormatRef:
    """A prompt format named the way the model pool decides it (``pool.format(model, override,
    base_dir)``), resolved where the call runs: cheaper to send than the format with its tokenizer."""

    override: str | None = None
    base_dir: str | None = None


@dataclass
class Call:
    model: str
    method: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None    # the caller's rows per forward pass (a benchmark's batch_size)
    auto_batch: bool | None = None
    label: str = ""                  # what the progress display says it is


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``range(n)`` in pieces of ``size`` (the last may be shorter)."""
    return [(i, min(i + size, n)) for i in range(0, n, max(1, int(size)))]


PROGRESS_METHODS = ("generate", "loglikelihood", "generate_scored")  # the Engine methods that report


def run_call(pool: Any, call: Call, progress: Any = None) -> Any:
    """Run ``call`` on ``pool`` (a ModelPool) and return plain data (Generation / NLL records).
    ``progress(done, total)`` hears the engine's batches (generation, log-likelihoods)."""
    if call.method not in METHODS:
        raise ValueError(f"unknown call {call.method!r}")
    engine = pool.engine(call.model)
    if call.method == "describe":  # (after loading: dtype, device and parameters are known)
        return pool.describe(call.model)
    if call.method == "info":
        return engine.info
    if call.method == "max_length":
        return getattr(engine, "max_length", None)
    kwargs = dict(call.kwargs)
    if progress is not None and call.method in PROGRESS_METHODS:
        kwargs["progress"] = progress
    if isinstance(kwargs.get("fmt"), FormatRef):
        ref = kwargs["fmt"]
        kwargs["fmt"] = pool.format(call.model, ref.override, Path(ref.base_dir) if ref.base_dir else None)
    saved = {k: getattr(engine, k) for k in ("batch_size", "auto_batch") if hasattr(engine, k)}
    try:
        if call.batch_size is not None and "batch_size" in saved:
            engine.batch_size = int(call.batch_size)
            if call.auto_batch is not None and "auto_batch" in saved:
                engine.auto_batch = call.auto_batch
        if call.method == "generate_scored":  # the generate stage's shard: answers, and the
            nll_targets = kwargs.pop("nll_targets", None)  # references' NLL when perplexity is asked
            gens = engine.generate(*call.args, **kwargs)
            nlls = engine.token_nll(list(call.args[0]), nll_targets) if nll_targets is not None else None
            return gens, nlls
        return getattr(engine, call.method)(*call.args, **kwargs)
    finally:
        for k, v in saved.items():
            setattr(engine, k, v)
