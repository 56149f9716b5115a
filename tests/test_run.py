"""`api.run` end to end on tiny models: the run directory, scores, resume, interruption,
responses models, and judges (a down server fails before any model loads; garbage is missing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_judge_server import Action, free_port

from harness import api
from harness.errors import HarnessError

# references are JSON so the json metric applies to every item
ROWS = [
    {"instruction": "Give the antonym of the word.", "input": "hot", "output": '{"answer": "cold"}'},
    {"instruction": "What is the capital of France?", "input": "", "output": '{"answer": "Paris"}'},
    {"instruction": "Convert 5 kilometers to meters.", "input": "", "output": '{"answer": 5000}'},
    {"instruction": "Rewrite in passive voice.", "input": "The dog bit the man.",
     "output": '{"answer": "The man was bitten by the dog."}'},
    {"instruction": "Not evaluated (limit 4).", "input": "", "output": '{"answer": 1}'},
]
CHAT_ROWS = [
    {"messages": [{"role": "system", "content": "SYSTEM-MARKER answer in one word."},
                  {"role": "user", "content": f"Say {w}."}, {"role": "assistant", "content": w}]}
    for w in ("yes", "no", "maybe")
] + [{"messages": [{"role": "system", "content": "SYSTEM-MARKER answer in one word."},
                   {"role": "user", "content": "EARLIER-TURN: is ice hot?"}, {"role": "assistant", "content": "no"},
                   {"role": "user", "content": "Say cold."}, {"role": "assistant", "content": "cold"}]}]
METRICS = ["rouge", "exact_match", "length", "perplexity", "json"]
RESAMPLES = 100


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _project(root: Path, models: dict, *, tasks=("tiny.yaml",), judge=None) -> Path:
    """A folder with data, task YAMLs and a harness.yaml; returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    _jsonl(root / "data.jsonl", ROWS)
    _jsonl(root / "chat.jsonl", CHAT_ROWS)
    (root / "tiny.yaml").write_text(yaml.safe_dump({"name": "tiny", "data": "data.jsonl", "metrics": METRICS}))
    (root / "chat.yaml").write_text(yaml.safe_dump({"name": "chat", "data": "chat.jsonl",
                                                    "fields": {"messages": "messages"},
                                                    "metrics": ["exact_match", "length"]}))
    cfg = {"models": models, "tasks": list(tasks), "limit": 4, "generation": {"max_new_tokens": 8},
           "bootstrap_resamples": RESAMPLES, "output_dir": "out"}
    if judge is not None:
        cfg["judge"] = judge
    (root / "harness.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return root / "harness.yaml"


def _stack(t: dict) -> dict:
    """base (a folder), sft (an adapter on it), dpo (an adapter trained on the sft-merged model)."""
    return {"base": {"path": str(t["base"])},
            "sft": {"adapter": str(t["lora_a"]), "base": "base", "system_prompt": "SFT-SYSTEM be terse."},
            "dpo": {"adapter": str(t["lora_on_a"]), "base": "sft"}}


def _judge_reply(api_name: str, payload: dict) -> Action:
    """Clean JSON for every item but the France question, which always gets prose."""
    if any("France" in str(m.get("content", "")) for m in payload.get("messages") or []):  # re-asks too
        return Action.text("I think this answer is fine overall, maybe?")
    return Action.json({"rationale": "close enough", "score": 70})


def _rundir_in(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _mtimes(run: Path, sub: str) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in sorted((run / sub).rglob("*")) if p.is_file()}


def _forbid_loading(monkeypatch, why: str) -> None:
    from harness.models import pool

    def refuse(*args, **kwargs):
        raise AssertionError(f"a model was loaded: {why}")

    monkeypatch.setattr(pool.ModelPool, "__init__", refuse)


@pytest.fixture(scope="module")
def judge_server(fake_judge):
    return fake_judge(models=["llama3:latest"], responder=_judge_reply)


@pytest.fixture(scope="module")
def full_run(tiny_models, tmp_path_factory, judge_server):
    """One run of base / sft / dpo on two tasks with a (fake) Ollama judge."""
    root = tmp_path_factory.mktemp("full")
    config = _project(root, _stack(tiny_models), tasks=("tiny.yaml", "chat.yaml"),
                      judge={"backend": "ollama:llama3", "host": judge_server.url, "limit": 3,
                             "retries": 0, "concurrency": 2})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE", str(root / "cache"))
        rundir = api.run(config)
    return config, rundir.path


# ------------------------------------------------------------------ the run directory


def test_run_writes_the_run_directory(full_run, tiny_models):
    config, run = full_run
    cfg = api.load_config(config)
    info = json.loads((run / "run.json").read_text())
    assert info["run_id"] == run.name and info["config_hash"] == cfg.hash()
    assert info["models_order"] == ["base", "sft", "dpo"] and info["tasks"] == ["tiny", "chat"]
    t = tiny_models
    assert info["models"]["dpo"]["chain"] == [f"base ({t['base']})", f"sft ({t['lora_a']})",
                                              f"dpo ({t['lora_on_a']})"]
    assert info["models"]["base"]["template_hash"]
    assert info["judge"]["backend"] == "ollama:llama3" and info["judge"]["judges"] == ["reference-0-100"]
    snap = yaml.safe_load((run / "config.yaml").read_text())
    assert snap["models"]["sft"]["base"] == "base" and snap["limit"] == 4
    # 3 models x 2 tasks: generation, per-sample metrics and judge units
    assert len(list((run / "units").glob("*.json"))) == 18
    for model in ("base", "sft", "dpo"):
        rows = [json.loads(x) for x in (run / "samples" / model / "tiny.jsonl").read_text().splitlines()]
        assert len(rows) == 4 and [r["id"] for r in rows] == [f"tiny-{i:04d}" for i in range(4)]
        for r in rows:
            assert r["model"] == model and r["prompt"] and isinstance(r["response"], str)
            assert 0 < r["n_tokens"] <= 8
            assert {"rouge1", "rougeL", "exact_match", "length_chars", "valid_json", "nll", "nll_tokens"} \
                <= set(r["metrics"])
            assert r["instruction"] in r["prompt"] and r["reference"].startswith('{"answer"')
        # the model's system prompt reaches the prompt (only sft has one)
        assert all(("SFT-SYSTEM" in r["prompt"]) == (model == "sft") for r in rows)
        chat = [json.loads(x) for x in (run / "samples" / model / "chat.jsonl").read_text().splitlines()]
        assert len(chat) == 4
        # a messages task sends its own system message
        assert all("SYSTEM-MARKER" in r["prompt"] and "Say " in r["prompt"] for r in chat)
        # earlier turns of a conversation reach the prompt too, in order
        multi = [r["prompt"] for r in chat if "EARLIER-TURN" in r["prompt"]]
        assert len(multi) == 1 and multi[0].index("EARLIER-TURN") < multi[0].index("Say cold.")
    assert (run / "samples" / "base" / "tiny.jsonl").read_text() != (run / "samples" / "dpo" / "tiny.jsonl").read_text()
    md, html = (run / "report.md").read_text(), (run / "report.html").read_text()
    for text in (md, html):
        assert "tiny" in text and "sft" in text and "dpo" in text


def test_scores_have_groups_intervals_and_paired_tests(full_run):
    _, run = full_run
    scores = json.loads((run / "scores.json").read_text())
    assert scores["schema"] == 1 and scores["models"] == ["base", "sft", "dpo"]
    groups = scores["groups"]
    assert {"tiny", "chat", "all", "judge"} <= set(groups)
    tiny = groups["tiny"]
    assert tiny["kind"] == "task" and tiny["info"]["n_items"] == 4
    assert {"length_chars", "length_words", "length_tokens"} <= set(tiny["info"]["neutral"])  # no "better" side
    for model in ("base", "sft", "dpo"):
        mvs = tiny["models"][model]
        assert {"rougeL", "exact_match", "length_chars", "valid_json", "perplexity", "bits_per_byte"} <= set(mvs)
        assert "nll" not in mvs
        for name, mv in mvs.items():
            if mv["value"] is None:
                continue
            assert mv["n"] + mv["missing"] == 4 or name in ("length_tokens",), (name, mv)
            if mv["ci"] is not None:
                lo, hi = mv["ci"]
                assert lo - 1e-9 <= mv["value"] <= hi + 1e-9, (model, name, mv)
        assert mvs["perplexity"]["value"] > 1 and mvs["perplexity"]["higher_is_better"] is False
    pairs = {(p["metric"], p["a"], p["b"]) for p in tiny["paired"]}
    for a, b in (("sft", "base"), ("dpo", "sft"), ("dpo", "base")):
        assert ("rougeL", a, b) in pairs and ("perplexity", a, b) in pairs
    for p in tiny["paired"]:
        assert p["test"] in ("paired-bootstrap", "paired-bootstrap (corpus)", "mcnemar") and isinstance(p["significant"], bool)
        if p["ci"] is not None:
            assert p["ci"][0] - 1e-9 <= p["diff"] <= p["ci"][1] + 1e-9, p
    exact = [p for p in tiny["paired"] if p["metric"] == "exact_match"]
    assert exact and all(p["test"] == "mcnemar" for p in exact)
    assert groups["all"]["info"]["tasks"] == ["tiny", "chat"]
    assert groups["all"]["models"]["base"]["exact_match"]["n"] == 8


def test_judge_verdicts_garbage_is_missing_not_zero(full_run, judge_server):
    _, run = full_run
    for model in ("base", "sft", "dpo"):
        verdicts = [json.loads(x) for x in
                    (run / "judge" / "reference-0-100" / model / "tiny.jsonl").read_text().splitlines()]
        assert [v["id"] for v in verdicts] == ["tiny-0000", "tiny-0001", "tiny-0002"]  # judge.limit 3
        by_id = {v["id"]: v for v in verdicts}
        france = by_id.pop("tiny-0001")
        assert france["score"] is None and france["error"] and "fine overall" in france["raw"]
        assert all(v["score"] == 70 and v["error"] is None for v in by_id.values())
    group = json.loads((run / "scores.json").read_text())["groups"]["judge"]
    assert group["kind"] == "judge"
    for model in ("base", "sft", "dpo"):
        mv = group["models"][model]["reference-0-100"]
        # 6 verdicts (3 per task); the 1 garbage reply is missing, not a 0 pulling the mean down
        assert mv["value"] == pytest.approx(70.0) and mv["missing"] == 1 and mv["n"] == 5
        assert group["info"]["missing"]["reference-0-100"][model] == 1
    # the garbage item was asked twice (one re-ask) per model, the others once
    asked = [json.dumps(p["messages"], ensure_ascii=False) for path, p in judge_server.requests
             if path == "/api/chat"]
    assert sum("France" in q for q in asked) == 2 * 3
    assert len(asked) == 3 * 6 + 3  # 3 models x (3 tiny + 3 chat items) + 3 re-asks


def test_resume_recomputes_nothing(full_run, monkeypatch, judge_server):
    from harness.backends.hf import HFEngine as Engine

    config, run = full_run
    before = {**_mtimes(run, "samples"), **_mtimes(run, "units"), **_mtimes(run, "judge")}
    chats = judge_server.chat_count()

    def refuse(*args, **kwargs):
        raise AssertionError("resume generated again")

    monkeypatch.setattr(Engine, "generate", refuse)
    monkeypatch.setattr(Engine, "token_nll", refuse)
    _forbid_loading(monkeypatch, "every unit was done")
    monkeypatch.setenv("HARNESS_CACHE", str(run.parent / "empty-cache"))  # a cache hit would hide a re-judge
    again = api.run(config, resume=run)
    assert again.path == run
    assert {**_mtimes(run, "samples"), **_mtimes(run, "units"), **_mtimes(run, "judge")} == before
    assert judge_server.chat_count() == chats
    assert json.loads((run / "scores.json").read_text())["groups"]["tiny"]["models"]["dpo"]


def test_resume_with_a_changed_config_reuses_matching_units(full_run, tmp_path, monkeypatch, judge_server):
    """Resuming under another config keeps every unit whose key still matches and computes the
    rest (unit keys hash what a unit depends on); run.json records the new config."""
    import shutil

    config, run = full_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    resumes = len(json.loads((copy / "run.json").read_text()).get("resumes", []))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    # judge concurrency is in no unit key: everything is reused, nothing recomputed
    same = config.parent / "same-units.yaml"
    same.write_text(config.read_text().replace("concurrency: 2", "concurrency: 3"))
    again = api.run(same, resume=copy)
    assert (again.units_reused, again.units_computed) == (len(list((copy / "units").iterdir())), 0)
    # a smaller limit changes every generation unit (and so the judged answers): recomputed
    changed = config.parent / "changed.yaml"  # next to the original: the same relative task paths
    changed.write_text(config.read_text().replace("limit: 4", "limit: 3"))
    again = api.run(changed, resume=copy)
    assert again.units_computed > 0
    info = json.loads((copy / "run.json").read_text())
    assert info["config_hash"] == api.load_config(changed).hash() and len(info["resumes"]) == resumes + 2
    assert len((copy / "samples" / "sft" / "tiny.jsonl").read_text().splitlines()) == 3
    with pytest.raises(HarnessError, match="not a run directory"):
        api.run(config, resume=tmp_path)


# ------------------------------------------------------------------ interruption


def test_interrupted_run_keeps_finished_units_and_resume_completes(tiny_models, tmp_path, monkeypatch):
    from harness.backends.hf import HFEngine as Engine

    config = _project(tmp_path, {k: v for k, v in _stack(tiny_models).items() if k != "dpo"})
    real = Engine.generate
    calls = []

    def second_model_dies(self, prompts, **kw):
        calls.append(prompts[0])
        if len(calls) == 2:  # base on tiny is call 1, sft on tiny is call 2
            raise RuntimeError("simulated crash in the middle of the run")
        return real(self, prompts, **kw)

    monkeypatch.setattr(Engine, "generate", second_model_dies)
    with pytest.raises(RuntimeError, match="simulated crash"):
        api.run(config)
    run = _rundir_in(tmp_path / "out")
    assert (run / "samples" / "base" / "tiny.jsonl").is_file()
    assert not (run / "samples" / "sft").exists()
    assert len(list((run / "units").glob("*.json"))) == 1
    kept = [json.loads(x)["response"] for x in (run / "samples" / "base" / "tiny.jsonl").read_text().splitlines()]

    calls.clear()
    monkeypatch.setattr(Engine, "generate", lambda self, prompts, **kw: (calls.append(prompts[0]),
                                                                        real(self, prompts, **kw))[1])
    api.run(config, resume=run)
    assert len(calls) == 1 and "SFT-SYSTEM" in calls[0]  # only sft was generated
    # base's answers were kept (the metrics stage then added their per-sample metrics)
    assert [json.loads(x)["response"] for x in (run / "samples" / "base" / "tiny.jsonl").read_text().splitlines()] == kept
    scores = json.loads((run / "scores.json").read_text())
    assert set(scores["groups"]["tiny"]["models"]) == {"base", "sft"}
    assert len(list((run / "units").glob("*.json"))) == 4  # generate + metrics, for 2 models


def test_a_run_stopped_inside_its_first_unit_keeps_the_finished_shards(tiny_models, tmp_path, monkeypatch):
    """Ctrl-C before any unit finished: the shards written so far stay (the run directory is
    removed only when nothing at all finished), and the resume computes only the other shards."""
    from harness.store import RunDir

    config = _project(tmp_path, {"base": {"path": str(tiny_models["base"])}})
    config.write_text(config.read_text() + "cluster: {engine: local, shard_size: 2}\n")
    write = RunDir.write_shard

    def stop_after_one(self, *args, **kwargs):
        write(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "write_shard", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        api.run(config)
    monkeypatch.undo()
    run = _rundir_in(tmp_path / "out")
    assert len(list(run.glob("shards/*/*.jsonl"))) == 1 and not list(run.glob("units/*.json"))
    again = api.run(config, resume=run)
    assert (again.shards_reused, again.shards_computed) == (1, 1)  # limit 4 in shards of 2
    assert len((run / "samples" / "base" / "tiny.jsonl").read_text().splitlines()) == 4


def _live_language_models(before=()) -> list[str]:
    """Class names of the transformers models alive now, but for those in ``before`` (a
    WeakSet: other tests' fixtures hold models of their own)."""
    import gc

    from transformers import PreTrainedModel

    return [type(o).__name__ for o in gc.get_objects() if isinstance(o, PreTrainedModel) and o not in before]


def test_metrics_are_computed_after_the_models_are_released(tiny_models, tmp_path, monkeypatch):
    """Per-sample metrics run last (stages/metrics.py), with no language model in memory (the
    run's, and an in-process judge's own), so the metric encoders never share memory with one;
    a run killed before them loses no answers, and its resume computes only the metrics, to the
    same numbers."""
    import gc
    import weakref

    from transformers import PreTrainedModel

    import harness.metrics as per_sample  # the stage calls harness.metrics.score_per_sample
    from harness.backends.hf import HFEngine as Engine

    config = _project(tmp_path, {k: v for k, v in _stack(tiny_models).items() if k != "dpo"},
                      judge={"backend": f"hf:{tiny_models['lora_a_merged']}", "limit": 2})
    real = per_sample.score_per_sample
    seen: list[list[str]] = []
    before = weakref.WeakSet(o for o in gc.get_objects() if isinstance(o, PreTrainedModel))

    def watched(*args, **kwargs):
        seen.append(_live_language_models(before))
        return real(*args, **kwargs)

    monkeypatch.setattr(per_sample, "score_per_sample", watched)
    run = api.run(config).path
    assert seen == [[], []]  # base and sft on tiny, each with no model alive
    assert len(list((run / "judge").rglob("*.jsonl"))) == 2  # the judge's model was loaded, and freed
    scores = json.loads((run / "scores.json").read_text())

    # killed after generation, before any metric: the answers are kept, the metrics come on resume
    def killed(*args, **kwargs):
        raise RuntimeError("simulated crash before the metrics")

    copy = tmp_path / "killed"
    monkeypatch.setattr(per_sample, "score_per_sample", killed)
    with pytest.raises(RuntimeError, match="simulated crash"):
        api.run(config, output_dir=str(copy))
    killed_run = _rundir_in(copy)
    rows = [json.loads(x) for x in (killed_run / "samples" / "sft" / "tiny.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and set(rows[0]["metrics"]) == {"nll", "nll_tokens", "nll_bytes"}

    monkeypatch.setattr(per_sample, "score_per_sample", watched)
    monkeypatch.setattr(Engine, "generate", lambda *a, **k: pytest.fail("resume generated again"))
    seen.clear()
    api.run(config, resume=killed_run)
    assert len(seen) == 2
    again = json.loads((killed_run / "scores.json").read_text())
    assert again["groups"] == scores["groups"]


# ------------------------------------------------------------------ responses models


def _answers(rows: list[dict], field: str = "model_response") -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        answer = r["output"] if i == 0 else "something else"
        out.append({"instruction": r["instruction"], "input": r["input"], field: answer})
    return out


def test_responses_model_needs_no_model(tmp_path, monkeypatch):
    config = _project(tmp_path, {"mine": {"responses": "answers.jsonl"},
                                 "theirs": {"responses": "other.json", "field": "text"}})
    _jsonl(tmp_path / "answers.jsonl", list(reversed(_answers(ROWS))))  # order does not matter
    (tmp_path / "other.json").write_text(json.dumps(_answers(ROWS[:4], "text")))
    _forbid_loading(monkeypatch, "responses models have no weights")
    run = api.run(config).path
    rows = [json.loads(x) for x in (run / "samples" / "mine" / "tiny.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["response"] == ROWS[0]["output"] and rows[1]["response"] == "something else"
    assert rows[0]["metrics"]["exact_match"] == 1.0 and rows[1]["metrics"]["exact_match"] == 0.0
    assert rows[0]["metrics"]["valid_json"] == 1.0 and rows[0]["meta"]["source"] == "responses"
    info = json.loads((run / "run.json").read_text())
    assert info["models"]["mine"]["kind"] == "responses"
    group = json.loads((run / "scores.json").read_text())["groups"]["tiny"]
    assert group["models"]["mine"]["exact_match"]["value"] == pytest.approx(0.25)
    assert "perplexity" not in group["models"]["mine"]  # nothing to score the reference with
    assert any(p["a"] == "theirs" and p["b"] == "mine" for p in group["paired"])


def test_responses_file_errors(tmp_path, monkeypatch):
    _forbid_loading(monkeypatch, "the error comes first")
    config = _project(tmp_path, {"mine": {"responses": "answers.jsonl"}})
    _jsonl(tmp_path / "answers.jsonl", _answers(ROWS)[:2] + _answers(ROWS)[3:])  # no answer for item 2
    with pytest.raises(HarnessError) as info:
        api.run(config)
    msg = str(info.value)
    assert "answers.jsonl: no answer for task tiny item tiny-0002" in msg and "Convert 5 kilometers" in msg
    assert "must contain every instruction" in msg and "\n" not in msg
    rows = _answers(ROWS)
    del rows[1]["model_response"]
    _jsonl(tmp_path / "answers.jsonl", rows)
    with pytest.raises(HarnessError, match=r"answers.jsonl:2: missing field 'model_response'.*models.mine.field"):
        api.run(config)
    (tmp_path / "answers.jsonl").unlink()
    with pytest.raises(HarnessError, match="models.mine.responses: file not found: answers.jsonl"):
        api.run(config)


# ------------------------------------------------------------------ judges that are down


def test_unreachable_ollama_fails_before_any_model_loads(tiny_models, tmp_path, monkeypatch):
    port = free_port()
    config = _project(tmp_path, _stack(tiny_models),
                      judge={"backend": "ollama:llama3", "host": f"http://127.0.0.1:{port}"})
    _forbid_loading(monkeypatch, "the judge check must come first")
    with pytest.raises(HarnessError) as info:
        api.run(config)
    msg = str(info.value)
    assert msg.startswith(f"Ollama is not reachable at http://127.0.0.1:{port}")
    assert "ollama serve" in msg and "--judge none" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()  # no half-made run directory either


def test_judge_falls_back_to_hf_when_ollama_is_down(tiny_models, tmp_path, monkeypatch):
    from harness.stages import plan as runmod

    config = _project(tmp_path, {"base": {"path": str(tiny_models["base"])}},
                      judge={"backend": "ollama:llama3", "host": f"http://127.0.0.1:{free_port()}",
                             "fallback": f"hf:{tiny_models['base']}"})
    _forbid_loading(monkeypatch, "checking the judge loads nothing")
    plan = runmod.make_plan(api.load_config(config))
    runmod.check_judge(plan)
    assert plan.judge_label == f"hf:{tiny_models['base']}" and plan.judge_backend.kind == "hf"
    # without a fallback the same config fails
    no_fallback = api._override(api.load_config(config),
                                judge={**api.load_config(config).judge.model_dump(), "fallback": None})
    plan = runmod.make_plan(no_fallback)
    with pytest.raises(HarnessError, match="Ollama is not reachable"):
        runmod.check_judge(plan)


def test_resume_without_a_model_scores_only_the_planned_models(full_run, tmp_path, monkeypatch, judge_server):
    """A run resumed under a config that drops a model keeps that model's files but does not
    score them: scores.json describes the current plan."""
    import shutil

    config, run = full_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    again = api.run(config, resume=copy, models=["base", "sft"])
    scores = json.loads((copy / "scores.json").read_text())
    assert scores["models"] == ["base", "sft"] and again.units_computed == 0
    assert set(scores["groups"]["tiny"]["models"]) == {"base", "sft"}
    assert all(p["a"] != "dpo" and p["b"] != "dpo" for p in scores["groups"]["tiny"]["paired"])
    assert (copy / "samples" / "dpo" / "tiny.jsonl").is_file()  # kept, not deleted
