"""Gate rules checked before a run starts, against the scores the plan will produce.

A rule's grammar, its model names and its metric names are all known before any model loads:
the groups are the tasks, ``all``, the benchmarks and the judges of the plan, and each group's
metrics come from the metric registry. A mistake there (``sft.rougeLL``) is an input error
(exit 2) at once, not a failed gate (exit 1) after the whole run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.gate.lookup import ScoreTable
from harness.gate.rules import CompareRule, DropRule, parse_rules, split_drop_key


def expected_scores(groups: dict[str, tuple[str, dict[str, Iterable[str]]]]) -> dict[str, Any]:
    """A scores.json-shaped ``groups`` skeleton (no values) from ``{group: (kind, {model: metrics})}``."""
    return {g: {"kind": kind, "models": {m: {metric: {"value": None} for metric in metrics}
                                         for m, metrics in per_model.items()}}
            for g, (kind, per_model) in groups.items()}


def preflight(rules: Any, groups: dict[str, Any], models: list[str], *, where: str = "gates",
              open_ended: Iterable[str] = ()) -> list:
    """Parse ``rules`` and resolve every score they name against the ``groups`` skeleton; raise
    HarnessError for a grammar mistake, an unknown model or an unknown metric. Metric names that
    start with an ``open_ended`` prefix (per-field JSON accuracy) are only known after the run."""
    parsed = parse_rules(rules, where=where)
    table = ScoreTable(groups, label="the scores this run will produce", models=models)
    prefixes = tuple(open_ended)

    def check(model: str | None, rest: str, here: str) -> None:
        if model is not None:
            table.check_model(model, here)
        if any(p in rest for p in prefixes):
            return
        table.resolve(rest, here)

    for i, rule in enumerate(parsed):
        here = f"{where}[{i}] '{rule.label}'"
        if isinstance(rule, CompareRule):
            for ref in (rule.left, rule.right_ref):
                if ref is not None:
                    check(ref.model, ref.rest, here)
        elif isinstance(rule, DropRule):
            for key in rule.limits:
                model, rest = split_drop_key(key, table.models)
                check(model, rest, f"{here} max_drop.{key}")
    return parsed
