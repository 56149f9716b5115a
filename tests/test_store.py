"""The run-directory API: layout, atomic writes, clear errors."""

from __future__ import annotations

import json
import re
import stat
from datetime import datetime

import pytest

from harness.errors import HarnessError
from harness.records import Sample, Verdict
from harness.store import RunDir, is_run_dir, new_run_id, open_run


def test_create_run_id_format_and_collision(tmp_path, monkeypatch):
    r1 = RunDir.create(tmp_path, config_hash="a1b2c3d4e5")
    assert re.fullmatch(r"\d{8}-\d{6}-a1b2c3", r1.path.name), r1.path.name
    assert r1.path.is_dir()
    assert new_run_id("ab:cd/ef99", datetime(2026, 11, 26, 1, 30, 0)) == "20261126-013000-abcdef"
    (tmp_path / "x").mkdir()
    again = RunDir.create(tmp_path, "x")  # explicit id reopens (resume)
    assert again.path == tmp_path / "x"
    # a generated id that collides gets a suffix instead of reusing the folder (the clock held
    # still: a second ticking between the two calls made no collision)
    import harness.store as store

    moment = datetime(2026, 11, 26, 1, 30, 0)
    monkeypatch.setattr(store, "new_run_id", lambda config_hash="", now=None: new_run_id(config_hash, moment))
    base = new_run_id("zz", moment)
    (tmp_path / base).mkdir(exist_ok=True)
    r2 = RunDir.create(tmp_path, config_hash="zz")
    assert r2.path != tmp_path / base and r2.path.name.startswith(base.rsplit("-", 1)[0])


def test_json_roundtrip_korean_nan_and_mode(tmp_path):
    run = RunDir.create(tmp_path, "r")
    p = run.write_json("scores.json", {"text": "대한민국의 수도는 서울", "nan": float("nan"), "t": (1, 2)})
    raw = p.read_text(encoding="utf-8")
    assert "대한민국" in raw  # not \u escaped
    assert run.read_json("scores.json") == {"text": "대한민국의 수도는 서울", "nan": None, "t": [1, 2]}
    assert stat.S_IMODE(p.stat().st_mode) & 0o044, "stored files must not be owner-only"


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path, "r")
    run.write_json("a.json", {"x": 1})
    with pytest.raises(TypeError):
        run.write_json("a.json", {"x": object()})
    assert run.read_json("a.json") == {"x": 1}

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("harness.store.os.fsync", disk_full)  # fails after the temp file got data
    with pytest.raises(OSError):
        run.write_json("a.json", {"x": 2})
    assert run.read_json("a.json") == {"x": 1}
    assert sorted(p.name for p in run.path.iterdir()) == ["a.json"]


def test_jsonl_bad_line_names_file_and_line(tmp_path):
    run = RunDir.create(tmp_path, "r")
    path = run.path / "samples" / "base" / "t.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"id": "1", "task": "t"}\n\n{"id": "2", broken\n', encoding="utf-8")
    with pytest.raises(HarnessError) as e:
        run.read_jsonl("samples/base/t.jsonl")
    assert f"{path}:3" in str(e.value)
    path.write_text('{"id": "1", "task": "t"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(HarnessError, match=r"t\.jsonl:2: expected a JSON object"):
        run.samples("base", "t")


def test_samples_roundtrip_and_listing(tmp_path):
    run = RunDir.create(tmp_path, "r")
    rows = [Sample(id=f"s{i}", task="demo-ko", model="sft", lang="ko", response=f"답변 {i}", metrics={"rougeL": 0.5})
            for i in range(3)]
    run.write_samples("sft", "demo-ko", rows)
    run.write_jsonl("samples/base/demo-en.jsonl", [Sample(id="e", task="demo-en").to_dict()])
    back = run.samples("sft", "demo-ko")
    assert [s.response for s in back] == ["답변 0", "답변 1", "답변 2"]
    assert back[0].metrics == {"rougeL": 0.5}
    assert [(m, t) for m, t, _ in run.sample_files()] == [("base", "demo-en"), ("sft", "demo-ko")]


def test_unit_markers(tmp_path):
    run = RunDir.create(tmp_path, "r")
    assert not run.unit_done("gen-abc123")
    run.mark_unit_done("gen-abc123", {"seconds": 1.5})
    assert run.unit_done("gen-abc123")
    marker = json.loads((run.path / "units" / "gen-abc123.json").read_text())
    assert marker.pop("peak_rss_mib") > 0  # the process's high-water mark so far (bench/demo.py reads it)
    assert marker == {"key": "gen-abc123", "seconds": 1.5}


@pytest.mark.parametrize("bad", ["../evil", "a/b", "", ".."])
def test_names_cannot_leave_the_run_dir(tmp_path, bad):
    run = RunDir.create(tmp_path, "r")
    with pytest.raises(HarnessError):
        run.samples_path(bad, "t")
    with pytest.raises(HarnessError):
        run.unit_done(bad)


def test_relative_paths_cannot_leave_the_run_dir(tmp_path):
    run = RunDir.create(tmp_path, "r")
    with pytest.raises(HarnessError):
        run.write_text("../outside.txt", "x")
    with pytest.raises(HarnessError):
        run.read_json("/etc/hostname")
    assert not (tmp_path / "outside.txt").exists()


def test_open_run_errors(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        open_run(tmp_path / "nope")
    empty = tmp_path / "x"
    empty.mkdir()
    assert not is_run_dir(empty)
    with pytest.raises(HarnessError, match=r"not a run directory \(no scores\.json\).*harness run"):
        open_run(empty)
    (empty / "run.json").write_text("{}")
    with pytest.raises(HarnessError, match="not a finished run"):
        open_run(empty)
    (empty / "scores.json").write_text('{"groups": {}}')
    assert is_run_dir(empty)
    run = open_run(empty)
    assert run.scores() == {"groups": {}}
    (empty / "scores.json").write_text('{"groups": {')
    with pytest.raises(HarnessError, match=r"scores\.json:1: not valid JSON"):
        run.scores()
    (empty / "scores.json").write_text('{"groups": []}')
    with pytest.raises(HarnessError, match="not a harness scores file"):
        run.scores()


# ------------------------------------------------------------------ the read API of report / gate / compare


def test_config_run_info_and_scores_checks(make_run, tmp_path):
    run = make_run("r", {"schema": 1, "groups": {}}, config={"models": {"a": "x"}, "gates": ["a.m >= 1"]},
                   run_info={"run_id": "r"})
    assert run.config() == {"models": {"a": "x"}, "gates": ["a.m >= 1"]}
    assert run.run_info() == {"run_id": "r"} and run.scores() == {"schema": 1, "groups": {}}
    run.write_text("config.yaml", "models: [a\ngates: 1\n")
    with pytest.raises(HarnessError, match=r"config\.yaml:\d+: not valid YAML"):
        run.config()
    run.write_json("scores.json", {"schema": 2, "groups": {}})
    with pytest.raises(HarnessError, match="schema 2 is not supported"):
        run.scores()
    empty = make_run("empty")
    assert empty.config() == {} and empty.run_info() == {}
    with pytest.raises(HarnessError, match=r"not a run directory \(no scores\.json\)"):
        empty.scores()
    with pytest.raises(HarnessError, match="not a finished run"):
        make_run("started", run_info={"run_id": "started"}).scores()
    with pytest.raises(HarnessError, match="run directory not found"):
        RunDir(tmp_path / "nowhere").scores()


def test_per_sample_values_are_keyed_like_baselines(make_run):
    def group(kind, *metrics):
        return {"kind": kind, "models": {"sft": {k: {"value": 0.5} for k in metrics}, "base": {}}, "paired": []}

    task = group("task", "em", "ok", "rougeL")
    groups = {"t1": task, "t2": task, "all": task, "quiz": group("benchmark", "acc", "f1"),
              "judge": group("judge", "ref"), "judge-pairwise": group("judge", "win_rate")}
    run = make_run(
        "r", {"schema": 1, "models": ["base", "sft"], "groups": groups},
        samples={("sft", "t1"): [Sample(id="a", task="t1", metrics={"em": 1.0, "rougeL": None, "ok": True}),
                                 Sample(id="b", task="t1", metrics={"em": float("nan"), "rougeL": 0.5})],
                 ("sft", "t2"): [Sample(id="a", task="t2", metrics={"em": 0.0})]},
        benchmarks={("sft", "quiz"): [{"id": "q1", "acc": 1.0, "metrics": {"f1": 0.5}}, {"doc_id": 7, "acc": False},
                                      {"acc": 1, "pred": "B"}]},
        verdicts={("ref", "sft", "t1"): [Verdict("a", "t1", "sft", "ref", score=80.0),
                                         Verdict("b", "t1", "sft", "ref", score=None)],
                  ("ref", "sft", "t2"): [Verdict("a", "t2", "sft", "ref", score=20.0)],
                  ("pair", "sft_vs_base", "t1"): [Verdict("a", "t1", "sft_vs_base", "pair", winner="sft")]},
    )
    assert run.per_sample("t1", "sft", "em") == {"t1/a": 1.0}  # NaN (stored as null) is missing, not 0
    assert run.per_sample("t1", "sft", "ok") == {"t1/a": 1.0}  # booleans count as 0/1
    assert run.per_sample("t1", "sft", "rougeL") == {"t1/b": 0.5}
    pooled = run.per_sample("all", "sft", "em")
    assert pooled == {"t1/a": 1.0, "t2/a": 0.0} and list(pooled) == ["t1/a", "t2/a"]  # the task groups, in order
    assert run.per_sample_metrics("quiz", "sft") == {"acc": {"q1": 1.0, "7": 0.0, "2": 1.0}, "f1": {"q1": 0.5}}
    assert run.per_sample("judge", "sft", "ref") == {"t1/a": 80.0, "t2/a": 20.0}  # judge name = metric
    assert run.per_sample_metrics("judge-pairwise", "sft") == {}  # no per-sample file behind win rates
    assert run.per_sample("t1", "base", "em") == {} and run.per_sample("nope", "sft", "em") == {}
    assert run.per_sample("quiz", "sft", "pred") == {}  # a record field that is not a scored metric
