"""Honest aggregates: every number shows what it rests on, and one resting on too little is not
shown as a number, never marked best or ▲/▼, and a gate on it fails closed."""

from __future__ import annotations

import pytest

from harness.gate import evaluate_gates
from harness.records import Coverage
from harness.report.write import write_reports


def _mv(value, n, missing=0, ci=None):
    return {"value": value, "ci": ci, "n": n, "missing": missing, "higher_is_better": True}


def test_shortfall_rule():
    cov = Coverage()
    assert cov.shortfall(_mv(1.0, 2)) == "n=2 < 10"
    assert cov.shortfall(_mv(1.0, 2, 4)) == "n=2 < 10, 4 missing"
    assert cov.shortfall(_mv(0.5, 10, 11)) == "11/21 missing"
    assert cov.shortfall(_mv(0.5, 10, 10)) is None  # exactly half missing is allowed
    assert cov.shortfall(_mv(0.5, 30)) is None
    assert Coverage(min_n=1).shortfall(_mv(1.0, 2)) is None
    assert Coverage.from_dict(None) == Coverage() and Coverage.from_dict({"min_n": 3}).min_n == 3


def _judge_run(make_run, coverage=None):
    """The demo's judge at --limit 2 (6 items per model): base 1 parsed verdict, sft 2 of 2, dpo 2."""
    scores = {"schema": 1, "models": ["base", "sft", "dpo"], "groups": {
        "judge": {"kind": "judge", "models": {
            "base": {"reference-0-100": _mv(0.0, 1, 5, [0.0, 0.0])},
            "sft": {"reference-0-100": _mv(100.0, 2, 0, [100.0, 100.0])},
            "dpo": {"reference-0-100": _mv(100.0, 2, 4, [100.0, 100.0])}}, "paired": [
            {"metric": "reference-0-100", "a": "sft", "b": "base", "diff": 100.0, "ci": [100.0, 100.0],
             "p_value": 0.01, "test": "paired-bootstrap", "significant": True, "n": 1}]},
        "demo-en": {"kind": "task", "models": {m: {"rougeL": _mv(v, 21, 0, [v - 0.1, v + 0.1])} for m, v in
                                               (("base", 0.2), ("sft", 0.6), ("dpo", 0.7))}, "paired": []}}}
    if coverage is not None:
        scores["coverage"] = coverage
    return make_run("run", scores, run_info={"run_id": "run", "models_order": ["base", "sft", "dpo"]},
                    config={"gates": ["sft.judge.reference-0-100 >= 50", "dpo.demo-en.rougeL >= 0.5"]})


def test_thin_judge_rows_are_not_results(make_run):
    run = _judge_run(make_run)
    md, html = write_reports(run.path)
    text = md.read_text(encoding="utf-8")
    summary = text[text.index("## Summary"):text.index("## Tasks") if "## Tasks" in text else None]
    row = next(line for line in summary.splitlines() if line.startswith("| judge · reference-0-100"))
    assert "100.0" not in row and "**" not in row and "▲" not in row
    assert row.count("insufficient (n=") == 3 and "1 (5 missing) · 2 · 2 (4 missing)" in row
    rouge = next(line for line in summary.splitlines() if line.startswith("| demo-en · rougeL"))
    assert "**0.700" in rouge and rouge.rstrip(" |").endswith("21")
    page = html.read_text(encoding="utf-8")
    assert "too few items to read: n=2 &lt; 10, 4 missing" in page or "too few items to read: n=2 < 10, 4 missing" in page
    # the gate on the thin judge score fails closed; the one on a real aggregate passes
    report = evaluate_gates(run.path)
    assert not report.passed and len(report.rows) == 2
    failed = [r for r in report.rows if not r.passed]
    assert len(failed) == 1 and "insufficient data" in failed[0].reason and "n=2 < 10" in failed[0].reason


@pytest.mark.parametrize("min_n, shown", [(1, True), (3, False)])
def test_the_stored_rule_is_what_readers_apply(make_run, min_n, shown):
    run = _judge_run(make_run, {"min_n": min_n, "max_missing_share": 1.0})
    md, _ = write_reports(run.path)
    text = md.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| judge · reference-0-100"))
    assert ("insufficient" not in row) == shown
    assert evaluate_gates(run.path).passed == shown
