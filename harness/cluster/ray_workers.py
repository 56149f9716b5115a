"""The Ray executor: long-lived worker actors, each with a ModelPool of the run's models.

One actor per worker (``cluster.workers``) holds the run's resolved models (plain data) and loads
a base once, switching adapters on it, as one process does. The driver sends ``Call``s (a shard
of one model x task, or a chunk of a benchmark's requests), one in flight per worker, and keeps
every result: workers never write the run directory. A worker that dies (killed process, lost
node) has its call sent again, to its restarted self or another worker; a call's result is
handed on once. Ray is imported only here, and only when a run asks for a cluster.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cluster.calls import Call
from harness.cluster.executor import OnDone, Rates, _bar
from harness.errors import HarnessError

INSTALL_FIX = 'Install it with pip install "checkpoint-harness[cluster]", or run without --workers / cluster:'
_PASSED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
               "HF_HOME", "HF_HUB_CACHE", "HARNESS_CACHE", "HARNESS_VERBOSE", "TQDM_DISABLE",
               "TRANSFORMERS_VERBOSITY")
MAX_RESTARTS = 2        # a killed worker comes back (and reloads its models) this many times
START_TIMEOUT_S = 600   # workers that cannot be placed (too few CPUs / GPUs) fail instead of hanging


def import_ray():
    try:
        import ray
    except ImportError:
        raise HarnessError("cluster: running on several workers needs Ray, which is not installed",
                           fix=INSTALL_FIX) from None
    return ray


def _worker_class(ray):
    class Worker:
        """One long-lived worker: a ModelPool of the run's models, loaded on first use."""

        def __init__(self, resolved: dict[str, Any], threads: int | None = None):
            from harness.progress import quiet_libraries

            quiet_libraries()
            if threads:  # the driver's intra-op thread count: on a CPU the same matmuls in another
                import torch  # thread count round differently (perplexity moved in the 7th digit)

                torch.set_num_threads(threads)
            self.resolved = resolved
            self._pool = None

        def where(self) -> dict[str, Any]:
            import socket

            return {"node": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(),
                    "host": socket.gethostname(), "pid": os.getpid()}

        def unreadable(self, paths: list[str]) -> list[str]:
            return [p for p in paths if not os.access(p, os.R_OK)]

        def run(self, call: Call) -> Any:
            from harness.cluster.calls import run_call

            if self._pool is None:
                from harness.models.pool import ModelPool

                self._pool = ModelPool(dict(self.resolved))
            return run_call(self._pool, call)

    return ray.remote(Worker)


def _connect(ray, cfg) -> bool:
    """Connect to (or start) Ray; True when this call started it (and so shuts it down)."""
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": bool(os.environ.get("HARNESS_VERBOSE")),
              "ignore_reinit_error": True}
    try:
        if cfg.address == "local":
            need = int(cfg.workers * cfg.cpus_per_worker + 0.999)
            # address="local": always a new cluster here, never one another process left running
            ray.init(address="local", num_cpus=max(os.cpu_count() or 1, need), **common)
        else:
            ray.init(address=cfg.address, **common)
    except Exception as err:  # noqa: BLE001 (Ray raises ConnectionError, RuntimeError, ValueError ...)
        raise HarnessError(f"cluster.address {cfg.address}: cannot connect to Ray: {str(err).splitlines()[0]}",
                           fix="Start the head node with `ray start --head` (then use address: auto) or "
                               "pass its ray://host:port.") from None
    return True


def local_paths(resolved: dict[str, Any]) -> list[tuple[str, str]]:
    """``(model, path)`` of every folder or file a model loads from: absolute paths and ones that
    exist here (a hub id is fetched, or found in the hub cache, by each node itself)."""
    out = []
    for name, r in resolved.items():
        if getattr(r, "kind", "") in ("served", "responses"):
            continue
        for p in [r.root, *r.adapters, r.tokenizer]:
            if p and (Path(str(p)).is_absolute() or Path(str(p)).exists()) and (name, str(p)) not in out:
                out.append((name, str(p)))
    return out


def _driver_threads() -> int:
    """How many threads torch uses for one matmul here (workers on CPU use the same, so their numbers
    equal a plain run's on this machine)."""
    import torch

    return torch.get_num_threads()


class RayExecutor:
    """``workers`` Ray actors serving the run's models (see the module docstring)."""

    remote = True

    def __init__(self, resolved: dict[str, Any], cfg, progress: Any = None):
        ray = self.ray = import_ray()
        self.progress = progress
        self.started = _connect(ray, cfg)
        gpus = cfg.gpus_per_worker
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self._check_room(cfg, gpus)
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        cls = _worker_class(ray)
        opts = {"num_cpus": cfg.cpus_per_worker, "num_gpus": gpus, "max_restarts": MAX_RESTARTS, "max_task_retries": 0}
        if env:
            opts["runtime_env"] = {"env_vars": env}
        self.run_tag = uuid.uuid4().hex[:8]  # actors are named harness-<run tag>-<i> in namespace "harness"
        threads = _driver_threads() if not gpus else None
        self.actors = [cls.options(**opts, name=f"harness-{self.run_tag}-{i}", namespace="harness").remote(resolved,
                                                                                                          threads)
                       for i in range(cfg.workers)]
        self.failures = [0] * cfg.workers
        self.where = self._wait_ready()
        self._check_paths(resolved)
        self.workers = cfg.workers

    def _check_room(self, cfg, gpus: float) -> None:
        have = self.ray.cluster_resources()
        for what, per in (("CPU", cfg.cpus_per_worker), ("GPU", gpus)):
            if per and have.get(what, 0) < per * cfg.workers:
                raise HarnessError(f"cluster: {cfg.workers} workers x {per:g} {what} need {per * cfg.workers:g} {what}s, "
                                   f"the Ray cluster has {have.get(what, 0):g}",
                                   fix=f"Lower cluster.workers or {what.lower()}s_per_worker, or add nodes.")

    def _wait_ready(self) -> list[dict[str, Any]]:
        refs = [a.where.remote() for a in self.actors]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=START_TIMEOUT_S)
        if len(ready) < len(refs):
            self.close()
            raise HarnessError(f"cluster: only {len(ready)} of {len(refs)} workers started within {START_TIMEOUT_S} s",
                               fix="Check `ray status` for free CPUs/GPUs on the cluster.")
        return self.ray.get(refs)

    def _check_paths(self, resolved: dict[str, Any]) -> None:
        paths = local_paths(resolved)
        missing = self.ray.get([a.unreadable.remote([p for _, p in paths]) for a in self.actors])
        for i, gone in enumerate(missing):
            if gone:
                model = next(n for n, p in paths if p == gone[0])
                node = self.where[i]
                self.close()
                raise HarnessError(f"models.{model}: worker {i} on node {node['node']} ({node['host']}) cannot read "
                                   f"{gone[0]}", fix="Put checkpoints on storage every node mounts at the same path, "
                                   "or use a hub id cached on each node (docs/cluster.md).")

    # ------------------------------------------------------------------ running calls
    def map(self, calls: Sequence[Call], *, on_done: OnDone | None = None, description: str | None = None,
            step: Any = None) -> list:  # (step: per-batch progress, local only; here per call via on_done)
        ray = self.ray
        out: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))[::-1]  # popped from the end: in order
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (call index, worker)
        rates = Rates(len(self.actors))
        finished = 0
        with _bar(self.progress, description, len(calls)) as update:
            idle = [w for w in range(len(self.actors)) if self.actors[w] is not None]
            while todo or running:
                while todo and idle:
                    w = idle.pop(0)
                    i = todo.pop()
                    running[self.actors[w].run.remote(calls[i])] = (i, w)
                if not running:
                    raise HarnessError("cluster: every worker died", fix="Check the workers' logs (`ray logs`); "
                                       "the finished shards are kept for --resume.")
                [ref], _ = ray.wait(list(running), num_returns=1)
                i, w = running.pop(ref)
                try:
                    result = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.NodeDiedError) as err:
                    todo.append(i)  # sent again: to this worker once restarted, or to another
                    self.failures[w] += 1
                    if self.failures[w] > MAX_RESTARTS:
                        self.actors[w] = None
                    else:
                        idle.append(w)
                    if self.progress is not None:
                        self.progress.log(f"cluster: worker {w} died ({type(err).__name__}); its shard is sent again")
                    continue
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise
                idle.append(w)
                while todo and idle:  # keep the workers busy while the driver writes
                    w2 = idle.pop(0)
                    j = todo.pop()
                    running[self.actors[w2].run.remote(calls[j])] = (j, w2)
                out[i] = result
                rates.add(w)
                finished += 1
                if on_done is not None:
                    on_done(i, result)
                update(finished, None, rates.describe(f"{description} ({len(calls)} shards)") if description else None)
        return out

    def worker_pids(self) -> list[int]:
        return [self.ray.get(a.where.remote())["pid"] for a in self.actors if a is not None]

    def close(self) -> None:
        for a in self.actors:
            if a is not None:
                with contextlib.suppress(Exception):  # (already gone)
                    self.ray.kill(a)
        self.actors = []
        if self.started:
            self.ray.shutdown()
            self.started = False


def start_cluster(resolved: dict[str, Any], cluster_config: Any, progress: Any = None) -> RayExecutor:
    """The Ray executor of ``cluster_config``: workers started, model paths checked on each."""
    return RayExecutor(resolved, cluster_config, progress)
