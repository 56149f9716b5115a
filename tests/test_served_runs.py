"""Served models (backend: openai / ollama) through `harness run`: generation, the report's
backend column, answers cached in the run directory, and log-prob work refused up front on a
server that cannot give prompt log-probs (tests/fake_judge_server.py on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_judge_server import Action
from typer.testing import CliRunner

from harness import api
from harness.cli import app


def _responder(api_name: str, payload: dict) -> Action:
    if api_name in ("openai", "ollama"):
        user = next(m["content"] for m in reversed(payload["messages"]) if m["role"] == "user")
        return Action.text("Answer: " + user.split()[-1])
    return Action.text("Answer: " + str(payload.get("prompt", "")).split()[-1])


def _project(tmp_path: Path, model_yaml: str, *, metrics: str = "[exact_match, rouge]", extra: str = "") -> Path:
    rows = [{"instruction": f"Repeat the word w{i}", "input": "", "output": f"Answer: w{i}"} for i in range(4)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(f"name: t\ndata: data.jsonl\nmetrics: {metrics}\n", encoding="utf-8")
    cfg = tmp_path / "harness.yaml"
    cfg.write_text(f"models:\n  srv: {model_yaml}\ntasks: [t.yaml]\noutput_dir: out\ncoverage: {{min_n: 1}}\n{extra}",
                   encoding="utf-8")
    return cfg


def test_a_served_openai_model_is_evaluated_on_a_generation_task(tmp_path, fake_judge):
    srv = fake_judge(models=["tiny"], responder=_responder)
    cfg = _project(tmp_path, f"{{backend: openai, model: tiny, base_url: '{srv.openai_url}'}}")
    run = api.run(cfg, quiet=True)
    samples = run.samples("srv", "t")
    assert [s.response for s in samples] == [f"Answer: w{i}" for i in range(4)]
    assert all(s.metrics["exact_match"] == 1.0 for s in samples)
    assert json.loads(samples[0].prompt)[-1] == {"role": "user", "content": "Repeat the word w0"}  # the chat API
    info = run.run_info()["models"]["srv"]
    assert info["backend"] == "openai" and info["template"] == "server-chat" and "api_key" not in info
    assert info["engine"]["backend"] == "openai" and info["engine"]["model"] == "tiny"
    report = (run.path / "report.md").read_text(encoding="utf-8")
    assert "openai 0.0.0-fake" in report and f"tiny @ {srv.openai_url}" in report
    assert any(run.served_cache_path().rglob("*")), "answers are kept in the run directory"
    # a resumed run with the unit's marker gone re-asks nothing: the answers come from the run's cache
    for marker in (run.path / "units").glob("*.json"):
        marker.unlink()
    asked = srv.count("/v1/chat/completions")
    api.run(cfg, resume=run.path, quiet=True)
    assert srv.count("/v1/chat/completions") == asked


def test_a_locally_rendered_prompt_goes_to_the_completions_endpoint_and_scores_perplexity(tmp_path, fake_judge):
    srv = fake_judge(models=["tiny"], responder=_responder)
    cfg = _project(tmp_path, f"{{backend: openai, model: tiny, base_url: '{srv.openai_url}', prompt_format: alpaca}}",
                   metrics="[exact_match, perplexity]")
    run = api.run(cfg, quiet=True)
    samples = run.samples("srv", "t")
    assert samples[0].prompt.startswith("Below is an instruction") and srv.count("/v1/completions") > 0
    assert all(s.metrics["nll_tokens"] > 0 and s.metrics["nll"] > 0 for s in samples)
    ppl = run.scores()["groups"]["t"]["models"]["srv"]["perplexity"]
    assert ppl["value"] > 1 and ppl["n"] == 4


def _cli(args):
    return CliRunner().invoke(app, args, env={"COLUMNS": "400", "NO_COLOR": "1"})


def _one_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("served", ["ollama", "llama.cpp-like"])
def test_log_prob_work_on_a_server_without_prompt_log_probs_is_refused_before_anything_runs(tmp_path, fake_judge,
                                                                                          served):
    srv = fake_judge(models=["tiny"], responder=_responder, prompt_logprobs=False)
    model = (f"{{backend: ollama, model: tiny, host: '{srv.url}', prompt_format: alpaca}}" if served == "ollama"
             else f"{{backend: openai, model: tiny, base_url: '{srv.openai_url}', prompt_format: alpaca}}")
    cfg = _project(tmp_path, model, metrics="[rouge, perplexity]")
    _one_line(_cli(["run", "-c", str(cfg), "-q"]), "models.srv", "perplexity", "prompt log-probabilities",
              "score at chance")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    cfg = _project(tmp_path, model, extra="benchmarks: [mmlu-mini]\n")
    _one_line(_cli(["run", "-c", str(cfg), "-q"]), "benchmark mmlu-mini")
    # generation alone is fine on the same server
    cfg = _project(tmp_path, model)
    assert _cli(["run", "-c", str(cfg), "-q"]).exit_code == 0


def test_perplexity_through_the_servers_chat_api_is_refused(tmp_path, fake_judge):
    srv = fake_judge(models=["tiny"], responder=_responder)
    cfg = _project(tmp_path, f"{{backend: openai, model: tiny, base_url: '{srv.openai_url}'}}",
                   metrics="[rouge, perplexity]")
    _one_line(_cli(["run", "-c", str(cfg), "-q"]), "models.srv", "prompt as text", "prompt_format")


def test_a_server_that_is_down_or_a_model_it_does_not_serve(tmp_path, fake_judge):
    srv = fake_judge(models=["tiny"], responder=_responder)
    cfg = _project(tmp_path, f"{{backend: openai, model: tinny, base_url: '{srv.openai_url}'}}")
    _one_line(_cli(["run", "-c", str(cfg), "-q"]), "tinny", "tiny")
    cfg = _project(tmp_path, "{backend: ollama, model: tiny, host: 'http://127.0.0.1:9'}")
    _one_line(_cli(["run", "-c", str(cfg), "-q"]), "127.0.0.1:9")


@pytest.mark.slow
def test_a_served_model_runs_a_multiple_choice_benchmark_through_prompt_log_probs(tmp_path, fake_judge):
    srv = fake_judge(models=["tiny"], responder=_responder)
    cfg = _project(tmp_path, f"{{backend: openai, model: tiny, base_url: '{srv.openai_url}'}}",
                   extra="benchmarks: [{name: mmlu-mini, limit: 4}]\n")
    run = api.run(cfg, quiet=True)
    acc = run.scores()["groups"]["mmlu-mini"]["models"]["srv"]["acc"]
    assert acc["n"] == 4 and 0.0 <= acc["value"] <= 1.0
    assert srv.count("/v1/completions") >= 4 * 4  # one scored continuation per choice
