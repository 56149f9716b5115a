"""The check: gate rules evaluated against a run (and a stored baseline) -> ``GateRow`` pass/fail rows.

A score that should be there and is not fails the rule (fail closed); input mistakes (a bad
rule, an unknown model or metric, no rules, no baseline) raise ``HarnessError``. Statistical
mode uses the intervals and paired tests stored in scores.json, and for ``max_drop`` a paired
bootstrap (``harness.metrics.stats``) over the per-sample values the run and the baseline share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.baseline import Baseline, load_baseline
from harness.errors import HarnessError
from harness.gate.lookup import Absent, Found, ScoreTable, expected_groups, judge_rate, metric_vocabulary
from harness.gate.rules import (
    EPS,
    JUDGE_LIMITS,
    CompareRule,
    DropRule,
    JudgeRule,
    load_gate_config,
    parse_rules,
    split_drop_key,
)
from harness.records import Coverage
from harness.store import RunDir

DROP_RESAMPLES = 2000  # bootstrap resamples of the paired max_drop test (seed 0)


@dataclass
class GateRow:
    """One checked rule (one per model for ``max_drop``): the value, the threshold it was held to,
    pass/fail and why."""

    rule: str
    actual: float | None
    threshold: float | None
    passed: bool
    reason: str
    name: str | None = None
    op: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "name": self.name, "actual": self.actual, "threshold": self.threshold,
                "passed": self.passed, "reason": self.reason}


@dataclass
class GateReport:
    """Every row of one gate check; ``exit_code`` is 0 when all passed, else 1."""

    rows: list[GateRow] = field(default_factory=list)
    run_id: str | None = None
    run_dir: str | None = None
    baseline: str | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[GateRow]:
        return [r for r in self.rows if not r.passed]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": self.run_dir, "baseline": self.baseline, "passed": self.passed,
                "rows": [r.to_dict() for r in self.rows]}

    def __repr__(self) -> str:
        from harness.notebook import gate_repr

        return gate_repr(self)

    def _repr_html_(self) -> str:
        """Jupyter: one row per rule, PASS/FAIL first."""
        from harness.notebook import gate_html

        return gate_html(self)


def _cmp(x: float, op: str, y: float) -> bool:
    if op == ">=":
        return x >= y - EPS
    if op == ">":
        return x > y + EPS
    if op == "<=":
        return x <= y + EPS
    if op == "<":
        return x < y - EPS
    return abs(x - y) <= EPS


def _interval_ok(lo: float, hi: float, op: str, mode: str) -> bool:
    """Does ``q OP 0`` hold for some (lenient) / every (required) q in [lo, hi]?"""
    if mode == "required":
        return _cmp(lo, op, 0.0) and _cmp(hi, op, 0.0)
    if op == "==":
        return lo <= EPS and hi >= -EPS
    return _cmp(hi, op, 0.0) or _cmp(lo, op, 0.0)


def fmt_number(x: float | None) -> str:
    """A value as the gate shows it: 4 significant digits, ``-`` when there is none."""
    if x is None:
        return "-"
    return f"{x:.4g}"


def fmt_interval(lo: float, hi: float) -> str:
    return f"[{fmt_number(lo)}, {fmt_number(hi)}]"


def _absent_row(rule: str, name: str | None, reason: str, actual: float | None = None,
                threshold: float | None = None) -> GateRow:
    return GateRow(rule, actual, threshold, False, f"fail-closed: {reason}", name)


def _eval_compare(rule: CompareRule, scores: ScoreTable, where: str) -> GateRow:
    left = scores.lookup(rule.left.model, rule.left.rest, where, rule.max_missing_rate)
    right = None
    if rule.right_ref is not None:
        right = scores.lookup(rule.right_ref.model, rule.right_ref.rest, where, rule.max_missing_rate)
    for side in (left, right):
        if isinstance(side, Absent):
            return _absent_row(rule.text, rule.name, side.reason,
                               left.value if isinstance(left, Found) else None)
    assert isinstance(left, Found)
    threshold = rule.offset if right is None else right.value + rule.offset
    point_ok = _cmp(left.value, rule.op, threshold)
    verdict = f"{fmt_number(left.value)} {rule.op} {fmt_number(threshold)}" if point_ok else \
        f"{fmt_number(left.value)} is not {rule.op} {fmt_number(threshold)}"
    if rule.significant == "off":
        return GateRow(rule.text, left.value, threshold, point_ok, verdict, rule.name, rule.op)

    # statistical mode: an interval for q = left - threshold, then "q OP 0"
    interval: tuple[float, float] | None = None
    how = ""
    if right is None:
        if left.ci:
            interval = (left.ci[0] - rule.offset, left.ci[1] - rule.offset)
            how = f"95% CI of {left.address} {fmt_interval(*left.ci)}"
    else:
        pt = None
        if left.group == right.group and left.metric == right.metric:
            pt = scores.paired(left.group, left.metric, rule.left.model, rule.right_ref.model)
        if pt and pt[1]:
            interval = (pt[1][0] - rule.offset, pt[1][1] - rule.offset)
            how = f"paired test: 95% CI of {rule.left.model} - {rule.right_ref.model} {fmt_interval(*pt[1])}"
        elif pt and pt[2] is not None and abs(rule.offset) <= EPS:
            # a test with a p-value but no interval: its 'significant' flag decides
            sig, holds = pt[2], _cmp(pt[0], rule.op, 0.0)
            if rule.significant == "required":
                ok = sig and holds
            else:
                ok = holds or not sig
            return GateRow(rule.text, left.value, threshold, ok,
                           f"{verdict}; paired test diff {fmt_number(pt[0])} "
                           f"{'significant' if sig else 'not significant'}", rule.name, rule.op)
        elif left.ci and right.ci:
            interval = (left.ci[0] - right.ci[1] - rule.offset, left.ci[1] - right.ci[0] - rule.offset)
            off = f" {'+' if rule.offset > 0 else '-'} {fmt_number(abs(rule.offset))}" if abs(rule.offset) > EPS else ""
            how = f"no paired test; 95% CIs {fmt_interval(*left.ci)} vs {fmt_interval(*right.ci)}{off}"
    if interval is None:
        if rule.significant == "required":
            return _absent_row(rule.text, rule.name, f"{verdict}; significance required but no interval is stored",
                               left.value, threshold)
        return GateRow(rule.text, left.value, threshold, point_ok,
                       f"{verdict} (no interval stored: point estimate used)", rule.name, rule.op)
    ok = _interval_ok(interval[0], interval[1], rule.op, rule.significant)
    if rule.significant == "required":
        tail = "holds significantly" if ok else "not shown to hold significantly"
    elif point_ok:
        tail = "holds"
    else:
        tail = "within noise: not a significant violation" if ok else "significant violation"
    return GateRow(rule.text, left.value, threshold, ok, f"{verdict}; {how}: {tail}", rule.name, rule.op)


def _drop_evidence(cur: Found, base: Found, baseline: Baseline, model: str,
                   run: RunDir) -> tuple[tuple[float, float], str] | None:
    """An interval for the drop (positive = worse than baseline) and how it was computed."""
    from harness.metrics.stats import MIN_PAIRED_N, bootstrap_ci

    sign = 1.0 if cur.higher_is_better else -1.0
    b_vals = baseline.sample_values(cur.group, model, cur.metric)
    if b_vals:
        c_vals = run.per_sample(cur.group, model, cur.metric)
        if c_vals:
            keys = [k for k in c_vals if k in b_vals]
            # the aggregate must be the mean of the samples, or a paired mean test says nothing about it
            consistent = (
                len(keys) >= MIN_PAIRED_N
                and math.isclose(sum(c_vals.values()) / len(c_vals), cur.value, rel_tol=1e-6, abs_tol=1e-9)
                and math.isclose(sum(b_vals.values()) / len(b_vals), base.value, rel_tol=1e-6, abs_tol=1e-9)
            )
            if consistent:
                lo, hi = bootstrap_ci([c_vals[k] - b_vals[k] for k in keys], n_resamples=DROP_RESAMPLES, seed=0)
                d1, d2 = sorted((-sign * lo, -sign * hi))  # drop = -(current - baseline) when higher is better
                return (d1, d2), f"paired bootstrap over {len(keys)} shared samples"
    if cur.ci:
        drop = (sign * (base.value - cur.ci[1]), sign * (base.value - cur.ci[0]))
        return (min(drop), max(drop)), f"baseline vs current 95% CI {fmt_interval(*cur.ci)}"
    return None


def _eval_drop(rule: DropRule, scores: ScoreTable, baseline: Baseline, run: RunDir, where: str) -> list[GateRow]:
    bscores = ScoreTable(baseline.groups, label=f"baseline '{baseline.name}'", models=baseline.models)
    all_models = set(scores.models) | set(bscores.models)
    rows: list[GateRow] = []
    for key, limit in rule.limits.items():
        model, rest = split_drop_key(key, all_models)
        targets = [model] if model is not None else None
        res = bscores.resolve(rest, f"{where} max_drop.{key}")
        if isinstance(res, Absent):
            rows.append(_absent_row(f"max_drop {key} <= {limit:g} vs {baseline.name}", rule.name, res.reason))
            continue
        group, metric = res
        if targets is None:
            targets = [m for m in bscores.models
                       if isinstance(((bscores.groups[group].get("models") or {}).get(m) or {}).get(metric), dict)]
        for model in targets:
            text = f"{model}.{group}.{metric} drop <= {limit:g} vs baseline {baseline.name}"
            if model not in bscores.models:
                rows.append(_absent_row(text, rule.name, f"model {model} is not in baseline '{baseline.name}'"))
                continue
            base = bscores.get(model, group, metric, None)
            if isinstance(base, Absent):
                rows.append(_absent_row(text, rule.name, base.reason))
                continue
            if model not in scores.models:
                rows.append(_absent_row(text, rule.name, f"model {model} of the baseline is not in this run"))
                continue
            if group not in scores.groups:
                reason = scores.missing_group(group) or Absent(f"group '{group}' is not in {scores.label}")
                rows.append(_absent_row(text, rule.name, reason.reason))
                continue
            cur = scores.get(model, group, metric, rule.max_missing_rate)
            if isinstance(cur, Absent):
                rows.append(_absent_row(text, rule.name, cur.reason))
                continue
            sign = 1.0 if base.higher_is_better else -1.0
            drop = sign * (base.value - cur.value)
            threshold = base.value - sign * limit
            point_fail = drop > limit + EPS
            verdict = f"drop {fmt_number(drop)} {'>' if point_fail else '<='} {limit:g} (baseline {fmt_number(base.value)})"
            if rule.significant == "off":
                rows.append(GateRow(text, cur.value, threshold, not point_fail, verdict, rule.name))
                continue
            ev = _drop_evidence(cur, base, baseline, model, run)
            if ev is None:
                if rule.significant == "required":
                    rows.append(_absent_row(text, rule.name, f"{verdict}; significance required but no interval",
                                            cur.value, threshold))
                else:
                    rows.append(GateRow(text, cur.value, threshold, not point_fail,
                                        f"{verdict} (no interval: point estimate used)", rule.name))
                continue
            (dlo, dhi), how = ev
            if rule.significant == "required":
                ok = dhi <= limit + EPS
                tail_txt = "drop shown to be within the limit" if ok else "drop not shown to be within the limit"
            else:
                ok = not (point_fail and dlo > limit + EPS)
                tail_txt = ("significant drop" if not ok else
                            "within noise: not a significant drop" if point_fail else "ok")
            rows.append(GateRow(text, cur.value, threshold, ok,
                                f"{verdict}; {how}: drop 95% CI {fmt_interval(dlo, dhi)}: {tail_txt}", rule.name))
    return rows


def _eval_judge(rule: JudgeRule, card: dict[str, Any] | None, label: str) -> list[GateRow]:
    """One row per bound and judge that has the figure; a bound no judge of the run has a
    figure for fails closed (no judge ran, no pairwise judge for position consistency)."""
    rows: list[GateRow] = []
    judges = (card or {}).get("judges") or {}
    for key, bound in rule.limits.items():
        figure, op = JUDGE_LIMITS[key]
        text = f"judge {figure} {op} {bound:g}"
        if not judges:
            rows.append(_absent_row(text, rule.name, f"no judge reliability card in {label} (no judge ran)"))
            continue
        found = {j: (body.get("figures") or {}).get(figure) or {} for j, body in judges.items()}
        present = {j: f for j, f in found.items() if isinstance(f.get("value"), (int, float))}
        if not present:
            why = "; ".join(f"{j}: {f.get('reason') or 'not computed'}" for j, f in found.items())
            rows.append(_absent_row(text, rule.name, f"no judge of {label} has a {figure} figure ({why})"))
            continue
        for j, f in present.items():
            value = float(f["value"])
            ok = _cmp(value, op, bound)
            rel = op if ok else ("is not " + op)
            rows.append(GateRow(f"{j}: {text}", value, bound, ok,
                                f"{fmt_number(value)} {rel} {fmt_number(bound)} (n={f.get('n', 0)})", rule.name, op))
    return rows


def evaluate_gates(run_dir: str | Path, rules: Iterable[Any] | None = None, baseline_path: str | Path | None = None, *,
              default_baseline: str | None = None, max_missing_rate: float | None = None,
              search: Iterable[str | Path] = ()) -> GateReport:
    """Check ``rules`` (default: ``gates:`` of the run's config.yaml snapshot) against a run.

    ``baseline_path`` (a name or a path) overrides every max_drop rule's baseline;
    ``default_baseline`` is used by max_drop rules that name none (default: the snapshot's
    ``baseline:``). ``max_missing_rate`` is the default limit on judge scores' missing rate
    (default: the snapshot's ``judge.max_missing_rate``, else 0.2). ``search`` lists folders
    whose ``baselines/`` is searched for a baseline name (then the current folder and the
    run's grandparent). Input mistakes raise HarnessError; failed or missing scores are rows
    with ``passed=False``.
    """
    run = RunDir(run_dir)
    doc = run.scores()
    cfg = run.config()
    where = "gates"
    if rules is None:
        rules = cfg.get("gates") or []
        where = f"{run.path / 'config.yaml'}: gates"
        if default_baseline is None:
            default_baseline = cfg.get("baseline")
    parsed = parse_rules(rules, where=where)
    if not parsed:
        raise HarnessError(f"no gate rules to check for {run.path}.",
                           fix="Add 'gates:' to harness.yaml or pass --config FILE with 'gates:'.")
    info = run.run_info()
    cfg_models = list((cfg.get("models") or {}).keys()) if isinstance(cfg.get("models"), dict) else []
    rate = max_missing_rate if max_missing_rate is not None else judge_rate(cfg)
    scores = ScoreTable(doc["groups"], label=f"run {doc.get('run_id') or run.path.name}",
                        models=[*(doc.get("models") or []), *cfg_models],
                        expected_groups=expected_groups(info, cfg), judge_rate=0.2 if rate is None else rate,
                        coverage=Coverage.from_dict(doc.get("coverage")),
                        vocabulary=metric_vocabulary((cfg.get("judge") or {}).get("judges") or []))

    report = GateReport(run_id=doc.get("run_id") or info.get("run_id") or run.path.name, run_dir=str(run.path))
    search_dirs = [*search, Path.cwd(), run.path.resolve().parent.parent]
    loaded: dict[str, Baseline] = {}
    for i, rule in enumerate(parsed):
        here = f"{where}[{i}] '{rule.label}'"
        if isinstance(rule, CompareRule):
            report.rows.append(_eval_compare(rule, scores, here))
            continue
        if isinstance(rule, JudgeRule):
            report.rows.extend(_eval_judge(rule, doc.get("judge_reliability"), scores.label))
            continue
        name = baseline_path if baseline_path is not None else rule.baseline or default_baseline
        if not name:
            raise HarnessError(f"{here}: max_drop needs a baseline.",
                               fix="Set 'baseline: NAME' in the rule or the config, or pass --baseline NAME|PATH.")
        key = str(name)
        if key not in loaded:
            loaded[key] = load_baseline(name, search_dirs)
        report.baseline = loaded[key].name if report.baseline in (None, loaded[key].name) else "several"
        report.rows.extend(_eval_drop(rule, scores, loaded[key], run, here))
    return report


def check_gates(run_dir: str | Path, config: str | Path | None = None,
                baseline: str | Path | None = None) -> GateReport:
    """The report ``gate_main`` prints: the run's own gates, or those of ``config`` (a
    harness.yaml or gate file, whose ``baseline:`` and judge missing-rate limit apply and
    whose folder's ``baselines/`` is searched). ``baseline`` overrides every max_drop baseline."""
    if config is None:
        return evaluate_gates(run_dir, None, baseline)
    rules, base, rate, folder = load_gate_config(config)
    return evaluate_gates(run_dir, rules, baseline, default_baseline=base, max_missing_rate=rate, search=[folder])


