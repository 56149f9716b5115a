"""CI score gates: rules over a run's ``scores.json`` -> pass/fail rows, JUnit, exit code.

- ``rules``:  the rule grammar (strings and mappings, ``max_drop``, ``significant``) and gate files
- ``lookup``: addressing ``model.group.metric`` in scores (a run's or a baseline's), fail-closed reasons
- ``check``:  rules evaluated against a run -> ``GateReport`` rows (``evaluate_gates``, ``check_gates``)
- ``output``: the console table, Markdown step summary, JUnit XML and ``gate_main`` (exit codes)
- ``preflight``: rules checked against the scores a plan will produce, before a run starts

Reads JSON/YAML only (no torch); docs/gates.md has the full story.
"""

from harness.gate.check import GateReport, GateRow, check_gates, evaluate_gates
from harness.gate.output import format_table, gate_main, to_markdown, write_junit
from harness.gate.preflight import expected_scores, preflight
from harness.gate.rules import (
    GRAMMAR,
    OPS,
    CompareRule,
    DropRule,
    JudgeRule,
    Rule,
    ScoreRef,
    load_gate_config,
    load_rules,
    parse_rule,
    parse_rule_string,
    parse_rules,
)

__all__ = [
    "GRAMMAR", "OPS", "CompareRule", "DropRule", "GateReport", "JudgeRule", "GateRow", "Rule", "ScoreRef", "check_gates",
    "expected_scores", "format_table", "gate_main", "load_gate_config", "load_rules", "parse_rule", "parse_rule_string", "parse_rules",
    "preflight", "evaluate_gates", "to_markdown", "write_junit",
]
