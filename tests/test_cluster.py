"""Data-parallel runs on Ray (harness/cluster): the same scores.json on 0, 1 and 2 workers, a
killed worker, an interrupted run resumed on fewer workers, two simulated nodes, a model path a
worker cannot read, and Ray not installed. One module-scoped Ray cluster of two simulated nodes
(``ray.cluster_utils.Cluster``), tiny models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness import api
from harness.errors import HarnessError

ray = pytest.importorskip("ray")

ITEMS = 16  # x 3 models in shards of 2, 24 new tokens: long enough to kill a worker mid-run
SHARDS = 3 * ITEMS // 2
ROWS = [{"instruction": f"Count to {i} and say the word number {i}.", "input": "", "output": f"number {i}"}
        for i in range(ITEMS)]
PREF = [{"prompt": f"Say {w}.", "chosen": w, "rejected": w[::-1] + "?"} for w in
        ("yes", "no", "cold", "warm", "blue", "seven")]


@pytest.fixture(scope="module")
def cluster():
    """Two simulated nodes with one CPU each (so two workers land on two nodes)."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def _project(root: Path, t: dict, *, shard_size: int = 2, max_new_tokens: int = 24, items: int = ITEMS,
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
@pytest.mark.parametrize("workers", [1, 2])
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


def _worker_pids(tag_prefix: str = "harness-") -> list[int]:
    pids = []
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a["namespace"] == "harness" and a["name"].startswith(tag_prefix):
            try:
                pids.append(ray.get(ray.get_actor(a["name"], namespace="harness").where.remote(), timeout=10)["pid"])
            except Exception:  # noqa: BLE001, S112 (an actor of a finished run)
                continue
    return pids


def test_a_killed_worker_has_its_shards_run_again(cluster, plain, tiny_models, tmp_path):
    config = _project(tmp_path / "p", tiny_models)
    result: dict = {}

    def two_workers() -> None:
        try:
            result["run"] = api.run(config, workers=2, write_report=False)
        except BaseException as err:  # noqa: BLE001 (shown by the asserts below)
            result["error"] = err

    thread = threading.Thread(target=two_workers)
    before = set(_worker_pids())
    thread.start()
    out = tmp_path / "p" / "out"
    deadline = time.time() + 600  # (a loaded machine: workers start slowly)
    while time.time() < deadline and thread.is_alive() and not [p for p in out.glob("*/shards/*/*.jsonl")]:
        time.sleep(0.02)
    assert "error" not in result, result.get("error")
    pids = [p for p in _worker_pids() if p not in before]
    assert pids, "no worker of this run found"
    os.kill(pids[0], signal.SIGKILL)
    assert thread.is_alive()  # killed mid-run
    thread.join(timeout=900)
    assert "error" not in result, result.get("error")
    run = result["run"]
    assert run.shards_computed == SHARDS  # every shard written once
    assert _scores(run.path) == _scores(plain)


def test_an_interrupted_two_worker_run_resumes_on_one_and_recomputes_nothing(cluster, plain, tiny_models, tmp_path):
    config = _project(tmp_path / "p", tiny_models)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "-c", str(config), "--workers", "2",
                             "--cluster", cluster.address, "-q", "-o", str(tmp_path / "out2")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    shards_now = lambda: len(list((tmp_path / "out2").glob("*/shards/*/*.jsonl")))  # noqa: E731
    while time.time() < deadline and proc.poll() is None and shards_now() < 3:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended early (exit {proc.returncode})"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [run_dir] = list((tmp_path / "out2").iterdir())
    shards = list(run_dir.glob("shards/*/*.jsonl"))
    markers = list(run_dir.glob("units/*.json"))
    assert shards and not (run_dir / "scores.json").exists()
    run = api.run(config, resume=run_dir, workers=1, cluster="auto", write_report=False)
    assert run.units_reused == len(markers) and run.shards_reused == len(shards)
    finished_gen = sum(json.loads(m.read_text())["unit"].startswith("generate") for m in markers)
    assert run.shards_computed == SHARDS - finished_gen * ITEMS // 2 - len(shards)
    assert _scores(run.path) == _scores(plain)


@pytest.mark.slow
def test_benchmarks_and_the_in_process_judge_fan_out_with_the_same_numbers(cluster, tiny_models, tmp_path,
                                                                          monkeypatch):
    """lm-eval requests and the judge's go out in chunks (4 here) across the workers: the same
    benchmark records, verdicts and scores as the same chunks in this process."""
    extra = {"benchmarks": [{"name": "mmlu-mini", "limit": 4, "batch_size": 4}],
             "judge": {"backend": f"hf:{tiny_models['base']}", "limit": 2}}
    runs = []
    for sub, workers in (("plain", None), ("two", 2)):
        monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / sub / "cache"))  # a judge cache each: both ask
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
