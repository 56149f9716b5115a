"""Data-parallel runs on Ray (harness/cluster): the same scores.json on 0, 1 and 2 workers, a
killed worker, an interrupted run resumed on fewer workers, two simulated nodes, a model path a
worker cannot read, and Ray not installed. One module-scoped Ray cluster of two simulated nodes
(``ray.cluster_utils.Cluster``), tiny models; the runs share their workers (``keep_workers``), so
torch and transformers are imported once per worker, not once per run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

import harness
from harness import api
from harness.env import cache_root
from harness.errors import HarnessError

ray = pytest.importorskip("ray")

ITEMS = 8  # x 3 models in shards of 2, 8 new tokens
SHARDS = 3 * ITEMS // 2
PREF = [{"prompt": f"Say {w}.", "chosen": w, "rejected": w[::-1] + "?"} for w in
        ("yes", "no", "cold", "warm", "blue", "seven")]


@pytest.fixture(scope="module", autouse=True)
def module_env(tmp_path_factory):
    """torch on one thread and a cache of this module's own (the judge test empties its judge
    cache), set before any worker starts: kept workers serve only runs with their settings, and
    the workers use the driver's thread count (the same arithmetic; two workers of two threads
    each on a 2-core machine would crawl)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cluster():
    """Two simulated nodes with one CPU each (so two workers land on two nodes); the runs of the
    module keep their workers (``keep_workers``)."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    with harness.keep_workers():  # (the notebook API's)
        yield c
    ray.shutdown()
    c.shutdown()


def _project(root: Path, t: dict, *, shard_size: int = 2, max_new_tokens: int = 8, items: int = ITEMS,
             engine: str = "local", extra: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"instruction": f"Count to {i} and say the word number {i}.", "input": "", "output": f"number {i}"}
            for i in range(items)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "pref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PREF), encoding="utf-8")
    (root / "gen.yaml").write_text(yaml.safe_dump({"name": "gen", "data": "data.jsonl",
                                                   "metrics": ["rouge", "perplexity", "exact_match", "length"]}))
    (root / "pref.yaml").write_text(yaml.safe_dump({"name": "pref", "type": "preference", "data": "pref.jsonl"}))
    cfg = {"models": {"base": {"path": str(t["base"])}, "sft": {"adapter": str(t["lora_a"]), "base": "base"},
                      "dpo": {"adapter": str(t["lora_on_a"]), "base": "sft"}},
           "tasks": ["gen.yaml", "pref.yaml"], "generation": {"max_new_tokens": max_new_tokens},
           "bootstrap_resamples": 100, "output_dir": "out",
           "cluster": {"engine": engine, "shard_size": shard_size, "address": "auto"}, **(extra or {})}
    (root / "harness.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return root / "harness.yaml"


def _scores(run: Path) -> dict:
    data = json.loads((run / "scores.json").read_text(encoding="utf-8"))
    data.pop("run_id")
    return data


def _samples(run: Path) -> dict:
    return {str(p.relative_to(run)): p.read_text(encoding="utf-8") for p in sorted((run / "samples").rglob("*.jsonl"))}


@pytest.fixture(scope="module")
def plain(tiny_models, tmp_path_factory):
    """The reference for every cluster run here: the same shards computed in this process (no Ray)."""
    config = _project(tmp_path_factory.mktemp("plain"), tiny_models)
    run = api.run(config, write_report=False).path
    assert not (run / "shards").exists()  # a finished unit's shards are folded into its samples
    return run


# --------------------------------------------------------------------------- config, no Ray
def test_cluster_config_errors_are_one_line(tiny_models, tmp_path):
    config = _project(tmp_path, tiny_models, extra={"cluster": {"worker": 2}})
    with pytest.raises(HarnessError, match=r"field 'cluster.worker': unknown field \(did you mean 'workers'"):
        api.load_config(config)
    config = _project(tmp_path, tiny_models, extra={"cluster": {"address": "my head node"}})
    with pytest.raises(HarnessError, match="is not a cluster address"):
        api.load_config(config)
    config = _project(tmp_path, tiny_models, extra={"cluster": {"engine": "rya"}})
    with pytest.raises(HarnessError, match="did you mean 'ray'"):
        api.load_config(config)


def test_the_cluster_settings_do_not_change_the_config_hash(tiny_models, tmp_path):
    a = api.load_config(_project(tmp_path / "a", tiny_models, extra={"cluster": {"workers": 2}}))
    b = api.load_config(_project(tmp_path / "b", tiny_models, extra={"cluster": None}))
    assert a.hash() == b.hash() and "cluster" not in b.snapshot() and a.snapshot()["cluster"]["workers"] == 2


def test_a_plain_run_imports_no_ray():
    code = ("import sys; import harness.api, harness.runner, harness.stages.generate, harness.stages.plan, "
            "harness.cluster; assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_without_ray_installed_the_error_names_the_extra(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(HarnessError) as err:
        api.run(_project(tmp_path, tiny_models), workers=2, write_report=False)
    assert 'pip install "checkpoint-harness[cluster]"' in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "out").glob("*"))  # nothing ran: no run directory is left


# --------------------------------------------------------------------------- on the cluster
@pytest.mark.parametrize("workers", [2, 1])
def test_workers_give_the_plain_runs_scores(cluster, plain, tiny_models, tmp_path, workers):
    run = api.run(_project(tmp_path, tiny_models), workers=workers, write_report=False)
    assert run.shards_computed == SHARDS  # each shard written once
    assert _scores(run.path) == _scores(plain)
    assert _samples(run.path) == _samples(plain)
    [where] = run.run_info()["clusters"]  # run.json: where the workers ran
    assert len(where["workers"]) == workers and where["shard_size"] == 2
    assert len({w["node_id"] for w in where["workers"]}) == workers  # two workers: on the two simulated nodes


def test_a_model_path_a_worker_cannot_read_is_named_with_its_node(cluster, tiny_models, tmp_path):
    from harness.cluster.ray_workers import start_cluster
    from harness.config import ClusterConfig, ModelSpec
    from harness.models.resolve import resolve_models

    copy = shutil.copytree(tiny_models["base"], tmp_path / "only-here")
    resolved = resolve_models({"base": ModelSpec(path=str(copy))}, ".")
    shutil.rmtree(copy)  # the driver resolved it; no worker can read it now
    with pytest.raises(HarnessError) as err:
        start_cluster(resolved, ClusterConfig(workers=1, address="auto"))
    msg = str(err.value)
    assert "worker 0 on node" in msg and str(copy) in msg and "\n" not in msg and "models.base" in msg


def test_workers_with_more_threads_than_their_node_has_cpus_are_named(cluster, tiny_models):
    """CPU workers use the driver's torch thread count: two threads on each one-CPU node crowd it,
    and the run says so (a note); one thread each does not."""
    import torch

    from harness.cluster.ray_workers import start_cluster
    from harness.config import ClusterConfig, ModelSpec
    from harness.models.resolve import resolve_models

    resolved = resolve_models({"base": ModelSpec(path=str(tiny_models["base"]))}, ".")
    crowded = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            executor = start_cluster(resolved, ClusterConfig(workers=2, address="auto"))
            crowded[threads] = executor.crowded_nodes()
            executor.close()
        finally:
            torch.set_num_threads(1)
    assert crowded[1] == [] and len(crowded[2]) == 2
    assert all(n.endswith(": 1 worker x 2 threads on 1 CPU") for n in crowded[2]), crowded[2]


def _run_workers(out: Path) -> list[int]:
    """The process ids of the workers of the run in ``out`` (run.json records them as it starts)."""
    for info in out.glob("*/run.json"):
        clusters = json.loads(info.read_text(encoding="utf-8")).get("clusters")
        if clusters:
            return [w["pid"] for w in clusters[-1]["workers"]]
    return []


def test_kept_workers_serve_the_next_run_with_its_own_models(cluster, plain, tiny_models, tmp_path):
    """Inside keep_workers() the next run takes the same worker process, which drops the models of
    the run before and loads this run's: the same answers as these models computed here."""
    first = api.run(_project(tmp_path / "a", tiny_models, items=2, max_new_tokens=4), models=["sft"], workers=1,
                    write_report=False)
    second = api.run(_project(tmp_path / "b", tiny_models), models=["base", "dpo"], workers=1, write_report=False)
    [[pid_first], [pid_second]] = [[w["pid"] for w in r.run_info()["clusters"][0]["workers"]] for r in (first, second)]
    assert pid_first == pid_second
    expected = {k: v for k, v in _samples(plain).items() if not k.startswith("samples/sft/")}
    assert _samples(second.path) == expected and len(expected) == 4  # base and dpo, gen and pref


def test_an_interrupted_two_worker_run_resumes_on_one_and_recomputes_nothing(cluster, plain, tiny_models, tmp_path,
                                                                             monkeypatch):
    """Stopped (Ctrl-C in the driver) once its third shard is written, a two-worker run resumes on
    one worker: it keeps the written shards and computes only the others. (kill -9 of a run and
    its resume: tests/test_failures.py.)"""
    from harness.store import RunDir

    config = _project(tmp_path / "p", tiny_models)
    write, written = RunDir.write_shard, []

    def write_then_stop(self, *args, **kwargs):
        written.append(write(self, *args, **kwargs))
        if len(written) == 3:
            raise KeyboardInterrupt
        return written[-1]

    monkeypatch.setattr(RunDir, "write_shard", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        api.run(config, workers=2, write_report=False)
    monkeypatch.undo()
    [run_dir] = list((tmp_path / "p" / "out").iterdir())
    assert sorted(run_dir.glob("shards/*/*.jsonl")) == sorted(written) and not (run_dir / "scores.json").exists()
    assert len(json.loads((run_dir / "run.json").read_text())["clusters"][0]["workers"]) == 2
    run = api.run(config, resume=run_dir, workers=1, cluster="auto", write_report=False)
    assert run.units_reused == 0 and run.shards_reused == 3 and run.shards_computed == SHARDS - 3
    assert _scores(run.path) == _scores(plain)


@pytest.mark.slow
def test_benchmarks_and_the_in_process_judge_fan_out_with_the_same_numbers(cluster, tiny_models, tmp_path):
    """lm-eval requests and the judge's go out in chunks (4 here) across the workers: the same
    benchmark records, verdicts and scores as the same chunks in this process."""
    extra = {"benchmarks": [{"name": "mmlu-mini", "limit": 4, "batch_size": 4}],
             "judge": {"backend": f"hf:{tiny_models['base']}", "limit": 2}}
    runs = []
    for sub, workers in (("plain", None), ("two", 2)):
        shutil.rmtree(cache_root() / "judge", ignore_errors=True)  # both runs ask the judge
        config = _project(tmp_path / sub, tiny_models, items=4, shard_size=4, max_new_tokens=8, extra=extra)
        runs.append(api.run(config, workers=workers, write_report=False).path)
    plain_run, two = runs
    assert _scores(two) == _scores(plain_run) and "mmlu-mini" in _scores(two)["groups"]
    assert (two / "benchmarks/dpo/mmlu-mini.jsonl").read_text() == (plain_run / "benchmarks/dpo/mmlu-mini.jsonl").read_text()

    def verdicts(run: Path) -> list[dict]:  # the judge cache's bookkeeping (requests, cached) aside
        rows = [json.loads(x) for x in (run / "judge/reference-0-100/dpo/gen.jsonl").read_text().splitlines()]
        for r in rows:
            r["meta"].pop("requests", None), r["meta"].pop("cached", None)
        return rows

    assert verdicts(two) == verdicts(plain_run)


def test_a_killed_worker_has_its_shards_run_again(cluster, plain, tiny_models, tmp_path, monkeypatch, capfd):
    """A worker killed (SIGKILL) mid-run: its shard goes to its restarted self or the other
    worker, each shard is written once, and the scores are the plain run's. The driver waits
    after its first shard until the kill, so the kill always lands mid-run. (Last in the module:
    the killed worker's restart, torch and transformers imported again, delays no other test.)"""
    from harness.store import RunDir

    config = _project(tmp_path / "p", tiny_models)
    write, first_written, killed = RunDir.write_shard, threading.Event(), threading.Event()

    def write_then_wait(self, *args, **kwargs):
        path = write(self, *args, **kwargs)
        if not first_written.is_set():
            first_written.set()
            killed.wait(timeout=600)
        return path

    monkeypatch.setattr(RunDir, "write_shard", write_then_wait)
    result: dict = {}

    def two_workers() -> None:
        try:
            result["run"] = api.run(config, workers=2, write_report=False)
        except BaseException as err:  # noqa: BLE001 (shown by the asserts below)
            result["error"] = err

    thread = threading.Thread(target=two_workers)
    thread.start()
    assert first_written.wait(timeout=600), result.get("error")
    pids = _run_workers(tmp_path / "p" / "out")
    assert len(pids) == 2, "no workers of this run found"
    os.kill(pids[0], signal.SIGKILL)
    killed.set()
    thread.join(timeout=900)
    assert "error" not in result, result.get("error")
    run = result["run"]
    assert run.shards_computed == SHARDS  # every shard written once
    assert _scores(run.path) == _scores(plain)
    assert "cluster: worker 0 died (" in capfd.readouterr().out  # (the progress display)
