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
              open_ended: Iterable[str] = (), switched_off: Iterable[str] = (),
              judges: Iterable[str] = ()) -> list:
    """Parse ``rules`` and resolve every score a comparison rule names against the ``groups``
    skeleton, as the gate will against the run's scores; raise HarnessError for a grammar
    mistake, an unknown model or an unknown metric. ``models`` are all configured models (one
    left out by ``--models`` is missing at gate time, not unknown); ``switched_off`` groups (a
    benchmark or judge turned off on the command line) fail closed at gate time, as the gate
    treats them. Metric names with an ``open_ended`` prefix (per-field JSON accuracy) are only
    known after the run; ``judges`` (the config's judge names) are metric names too, so a rule on
    a judge switched off is not mistaken for a misspelling. ``max_drop`` keys resolve against a
    baseline: see ``preflight_drop``."""
    from harness.gate.lookup import metric_vocabulary

    parsed = parse_rules(rules, where=where)
    table = ScoreTable(groups, label="the scores this run will produce", models=models,
                       expected_groups=switched_off, vocabulary=metric_vocabulary(judges))
    prefixes = tuple(open_ended)
    for i, rule in enumerate(parsed):
        if not isinstance(rule, CompareRule):
            continue
        here = f"{where}[{i}] '{rule.label}'"
        for ref in (rule.left, rule.right_ref):
            if ref is not None:
                table.check_model(ref.model, here)
                if not any(p in ref.rest for p in prefixes):
                    table.resolve(ref.rest, here)
    return parsed


def preflight_drop(rule: DropRule, baseline, run_models: Iterable[str], where: str) -> None:
    """Every ``max_drop`` key resolved against the baseline, as the gate's check will."""
    table = ScoreTable(baseline.groups, label=f"baseline '{baseline.name}'", models=baseline.models)
    known = set(table.models) | set(run_models)
    for key in rule.limits:
        _, rest = split_drop_key(key, known)
        table.resolve(rest, f"{where} max_drop.{key}")
