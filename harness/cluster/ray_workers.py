"""The Ray executor: long-lived worker actors, each with a ModelPool of the run's models.

One actor per worker (``cluster.workers``) imports torch and transformers as it starts (all
workers at once) and holds a ModelPool of the run's resolved models (plain data, sent with each
call): it loads a base once and switches adapters on it, as one process does. The driver sends
``Call``s (a shard of one model x task, or a chunk of a benchmark's requests), one in flight per
worker, and keeps every result: workers never write the run directory. A worker that dies
(killed process, lost node) has its call sent again, to its restarted self or another worker; a
call's result is handed on once. Inside ``keep_workers()`` a run's workers outlive it and serve
the next run. Ray is imported only here, and only when a run asks for a cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import uuid
from collections import Counter
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
_DISPLAY_ENV = ("HARNESS_VERBOSE", "TQDM_DISABLE", "TRANSFORMERS_VERBOSITY")  # what a worker logs, not computes
MAX_RESTARTS = 2        # a killed worker comes back (and reloads its models) this many times
START_TIMEOUT_S = 600   # workers that cannot be placed (too few CPUs / GPUs) fail instead of hanging


def import_ray():
    try:
        import ray
    except ImportError:
        raise HarnessError("cluster: running on several workers needs Ray, which is not installed",
                           fix=INSTALL_FIX) from None
    return ray


def _kill(ray, actors) -> None:
    for a in actors:
        with contextlib.suppress(Exception):  # (already gone)
            ray.kill(a)


def _worker_class(ray):
    class Worker:
        """One long-lived worker: a ModelPool of the models of the run it serves, loaded on first use."""

        def __init__(self):
            from harness.progress import quiet_libraries

            quiet_libraries()
            # What a first call imports (~8 s on a CPU), imported as the workers start, all at once,
            # instead of by each worker on its first shard while the others already compute.
            import peft  # noqa: F401
            import torch  # noqa: F401
            from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

            self._setup_key: str | None = None
            self._pool = None

        def where(self) -> dict[str, Any]:
            import socket

            return {"node": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(),
                    "host": socket.gethostname(), "pid": os.getpid()}

        def unreadable(self, paths: list[str]) -> list[str]:
            return [p for p in paths if not os.access(p, os.R_OK)]

        def run(self, call: Call, setup: tuple[str, dict[str, Any], int | None]) -> Any:
            """``setup``: (its key, the run's resolved models, torch threads); it comes with every
            call, so a worker Ray restarted, or one kept from another run, serves the right models."""
            from harness.cluster.calls import run_call

            if setup[0] != self._setup_key:
                self._use(*setup)
            return run_call(self._pool, call)

        def _use(self, key: str, resolved: dict[str, Any], threads: int | None) -> None:
            from harness.env import free_memory, release_memory
            from harness.models.pool import ModelPool

            if self._pool is not None:  # another run's models (kept workers): freed first
                self._pool.close_vllm()
                self._pool = None
                free_memory()
                release_memory()
            if threads:  # the driver's intra-op thread count: on a CPU the same matmuls in another
                import torch  # thread count round differently (perplexity moved in the 7th digit)

                torch.set_num_threads(threads)
            self._pool = ModelPool(dict(resolved))
            self._setup_key = key

    return ray.remote(Worker)


class _Keeper:
    """The workers kept between runs inside ``keep_workers()``: (settings key, actor) pairs."""

    def __init__(self):
        self.idle: list[tuple[tuple, Any]] = []
        self.started_ray = False

    def take(self, key: tuple, n: int) -> list[Any]:
        """Up to ``n`` kept workers with settings ``key``. Kept workers with other settings are
        stopped: they hold CPUs / GPUs the new run's workers may need."""
        mine = [a for k, a in reversed(self.idle) if k == key][:n]  # the last handed back first
        others = [a for k, a in self.idle if k != key]
        self.idle = [(k, a) for k, a in self.idle if k == key and a not in mine]
        if others:
            _kill(import_ray(), others)
        return mine

    def stop(self) -> None:
        if not self.idle and not self.started_ray:
            return
        ray = import_ray()
        _kill(ray, [a for _, a in self.idle])
        self.idle = []
        if self.started_ray and ray.is_initialized():
            ray.shutdown()


_keeper: _Keeper | None = None


@contextlib.contextmanager
def keep_workers():
    """Runs inside this block hand their Ray workers back when they end instead of stopping them,
    and a later run with the same worker settings (Ray cluster, CPUs and GPUs per worker,
    environment) takes them: no process start, no imports again, and the models stay loaded when
    the next run has the same ones. Every kept worker stops when the block ends (and Ray, if a run
    inside started it). For notebooks and test suites that run several evaluations in a row."""
    global _keeper
    if _keeper is not None:  # nested: the outer block keeps them
        yield
        return
    _keeper = keeper = _Keeper()
    try:
        yield
    finally:
        _keeper = None
        keeper.stop()


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
        self.died = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)
        self.progress = progress
        self.started = _connect(ray, cfg)
        gpus = cfg.gpus_per_worker
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self._check_room(cfg, gpus)
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        opts = {"num_cpus": cfg.cpus_per_worker, "num_gpus": gpus, "max_restarts": MAX_RESTARTS, "max_task_retries": 0,
                "scheduling_strategy": "SPREAD"}  # workers over as many nodes as have room
        if env:
            opts["runtime_env"] = {"env_vars": env}
        self.key = (ray.get_runtime_context().gcs_address, cfg.cpus_per_worker, gpus,  # (log settings aside)
                    tuple(sorted((k, v) for k, v in env.items() if k not in _DISPLAY_ENV)))
        self.run_tag = uuid.uuid4().hex[:8]  # actors are named harness-<run tag>-<i> in namespace "harness"
        self.actors = _keeper.take(self.key, cfg.workers) if _keeper is not None else []
        cls = _worker_class(ray)
        self.actors += [cls.options(**opts, name=f"harness-{self.run_tag}-{i}", namespace="harness").remote()
                        for i in range(len(self.actors), cfg.workers)]
        threads = _driver_threads() if not gpus else None
        blob = pickle.dumps((resolved, threads))
        self.setup = ray.put((hashlib.sha256(blob).hexdigest(), resolved, threads))
        self.failures = [0] * cfg.workers
        self.restarting: dict[Any, int] = {}  # ref of a restarting worker's `where` call -> worker
        self.where = self._wait_ready()
        self._check_paths(resolved)
        self.workers = cfg.workers
        self.threads = threads

    def crowded_nodes(self) -> list[str]:
        """Nodes where CPU workers run more torch threads (the driver's count each) than the node has
        CPUs: the threads then wait on each other and a run is slower than on fewer workers."""
        if not self.threads:
            return []
        cpus = {n["NodeID"]: n.get("Resources", {}).get("CPU", 0) for n in self.ray.nodes() if n.get("Alive")}
        per_node = Counter(w["node_id"] for w in self.where)
        address = {w["node_id"]: w["node"] for w in self.where}
        return [f"{address[n]}: {k} worker{'s' * (k > 1)} x {self.threads} threads on {cpus.get(n, 0):g} "
                f"CPU{'s' * (cpus.get(n, 0) != 1)}" for n, k in per_node.items() if k * self.threads > cpus.get(n, 0)]

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
            self.close(keep=False)
            raise HarnessError(f"cluster: only {len(ready)} of {len(refs)} workers started within {START_TIMEOUT_S} s",
                               fix="Check `ray status` for free CPUs/GPUs on the cluster.")
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayActorError as err:
            self.close(keep=False)
            raise HarnessError(f"cluster: a worker died while starting ({str(err).splitlines()[0]})",
                               fix="Check the workers' logs (`ray logs`) and run again.") from None

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
            idle = [w for w, a in enumerate(self.actors) if a is not None and w not in self.restarting.values()]

            def send() -> None:  # the next calls in order, to the idle workers
                while todo and idle:
                    w, i = idle.pop(0), todo.pop()
                    running[self.actors[w].run.remote(calls[i], self.setup)] = (i, w)

            while todo or running:
                send()
                if not running and not self.restarting:
                    raise HarnessError("cluster: every worker died", fix="Check the workers' logs (`ray logs`); "
                                       "the finished shards are kept for --resume.")
                [ref], _ = ray.wait([*running, *self.restarting], num_returns=1)
                if ref in self.restarting:  # a worker is back from its restart
                    w = self.restarting.pop(ref)
                    try:
                        ray.get(ref)
                        idle.append(w)
                    except self.died as err:
                        self._died(w, err)
                    continue
                i, w = running.pop(ref)
                try:
                    result = ray.get(ref)
                except self.died as err:
                    todo.append(i)  # sent again, to the first worker free
                    self._died(w, err, shard=True)
                    continue
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise
                idle.append(w)
                send()  # keep the workers busy while the driver writes
                out[i] = result
                rates.add(w)
                finished += 1
                if on_done is not None:
                    on_done(i, result)
                update(finished, None, rates.describe(f"{description} ({len(calls)} shards)") if description else None)
        return out

    def _died(self, w: int, err: BaseException, shard: bool = False) -> None:
        """Worker ``w`` died: Ray restarts it (it gets work again once it answers), up to MAX_RESTARTS
        times; after that it is gone."""
        self.failures[w] += 1
        if self.failures[w] > MAX_RESTARTS:
            self.actors[w] = None
        else:
            self.restarting[self.actors[w].where.remote()] = w
        if self.progress is not None:
            again = "; its shard is sent again" if shard else ""
            self.progress.log(f"cluster: worker {w} died ({type(err).__name__}){again}")

    def close(self, keep: bool = True) -> None:
        """Stop the workers (inside ``keep_workers()``: hand the live ones back for the next run)."""
        live = [a for a in self.actors if a is not None]
        self.actors = []
        if keep and _keeper is not None and self.ray.is_initialized():
            _keeper.idle += [(self.key, a) for a in live]
            _keeper.started_ray |= self.started
            self.started = False
            return
        _kill(self.ray, live)
        if self.started:
            self.ray.shutdown()
            self.started = False


def start_cluster(resolved: dict[str, Any], cluster_config: Any, progress: Any = None) -> RayExecutor:
    """The Ray executor of ``cluster_config``: workers started, model paths checked on each."""
    return RayExecutor(resolved, cluster_config, progress)
