"""Answers made elsewhere: non-text answers are stored as JSON, notebook-printed dicts are
reported once and scored by json_lenient (strict valid_json stays strict)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.cli import app
from harness.responses import answer_text, looks_like_python_literal

ROWS = [{"instruction": f"Is item {i} about stocks?", "input": "", "output": json.dumps({"stock": i % 2 == 0})}
        for i in range(4)]


def _project(tmp_path, answers: list) -> str:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [json]\n")
    (tmp_path / "a.jsonl").write_text("".join(
        json.dumps({"instruction": r["instruction"], "input": "", "model_response": a}) + "\n"
        for r, a in zip(ROWS, answers)))
    (tmp_path / "harness.yaml").write_text("models:\n  mine: {responses: a.jsonl}\ntasks: [t.yaml]\n"
                                           "output_dir: out\nbootstrap_resamples: 100\n")
    return str(tmp_path / "harness.yaml")


def _samples(tmp_path) -> list[dict]:
    run = next((tmp_path / "out").iterdir())
    return [json.loads(x) for x in (run / "samples" / "mine" / "t.jsonl").read_text().splitlines()]


def test_answer_text():
    assert answer_text({"a": True, "b": None}) == '{"a": true, "b": null}'
    assert answer_text(3) == "3" and answer_text(None) == "" and answer_text("x") == "x"
    assert looks_like_python_literal("{'a': True}") and not looks_like_python_literal('{"a": true}')
    assert not looks_like_python_literal("hello {")


def test_json_objects_in_a_responses_file_are_valid_json(tmp_path):
    """A notebook that saved answers as objects (not strings) is scored as the JSON it is."""
    config = _project(tmp_path, [{"stock": i % 2 == 0} for i in range(4)])
    result = CliRunner().invoke(app, ["run", "-c", config, "-q"])
    assert result.exit_code == 0, result.output
    rows = _samples(tmp_path)
    assert rows[0]["response"] == '{"stock": true}' and rows[0]["meta"]["answer_type"] == "dict"
    assert all(r["metrics"]["valid_json"] == 1.0 and r["metrics"]["json_field_acc"] == 1.0 for r in rows)


def test_python_dict_answers_are_reported_once_and_scored_leniently(tmp_path):
    config = _project(tmp_path, [str({"stock": i % 2 == 0}) for i in range(4)])  # "{'stock': True}"
    result = CliRunner().invoke(app, ["run", "-c", config], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert result.output.count("Python dict/list literals") == 1
    assert "4 of 4 answers on t" in result.output
    rows = _samples(tmp_path)
    assert all(r["metrics"]["valid_json"] == 0.0 and r["metrics"]["json_lenient"] == 1.0 for r in rows)
