"""Data-parallel evaluation: calls, executors (this process; Ray workers) and the fan-out Engine."""

from harness.cluster.calls import Call, FormatRef, chunks, run_call
from harness.cluster.engine import ShardedEngine, ShardedPool
from harness.cluster.executor import LocalExecutor

__all__ = ["Call", "FormatRef", "LocalExecutor", "ShardedEngine", "ShardedPool", "chunks", "run_call"]
