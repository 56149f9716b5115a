"""CI score gates: rules over a run's ``scores.json`` -> pass/fail rows, JUnit, exit code.

Rules (``gates:`` of harness.yaml or of a plain gate file; docs/gates.md has the full story)::

    gates:
      - "dpo.judge.reference-0-100 >= 60"                 # absolute
      - "sft.rougeL > base.rougeL"                        # relative between models
      - "dpo.judge >= sft.judge - 2"                      # relative with an offset
      - {rule: "sft.rougeL > base.rougeL", significant: true, name: sft-beats-base, max_missing_rate: 0.1}
      - {max_drop: {rougeL: 0.02, mmlu-mini.acc: 0.01}, baseline: main, significant: false}

Grammar of a rule string::

    rule  := score OP rhs
    OP    := ">=" | ">" | "<=" | "<" | "=="
    rhs   := NUMBER | score | score ("+" | "-") NUMBER      (spaces around + / -)
    score := MODEL "." METRIC | MODEL "." GROUP "." METRIC | MODEL "." GROUP

This module reads JSON/YAML only (no torch); ``gate_main`` is what ``harness gate`` and
``harness run --gate`` call.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.baseline import Baseline, load_baseline, per_sample_values, read_json, read_scores
from harness.errors import HarnessError

GRAMMAR = ("a rule is 'SCORE OP NUMBER' or 'SCORE OP SCORE [+|- NUMBER]' with OP one of >= > <= < ==, "
           "SCORE = model.metric or model.group.metric (e.g. 'sft.rougeL >= 0.30', "
           "'dpo.judge >= sft.judge - 2'), or a mapping {rule: ..., significant: true|false|required, "
           "name: ..., max_missing_rate: 0.1} or {max_drop: {METRIC: DROP, ...}, baseline: NAME, "
           "significant: ...}; see docs/gates.md")

OPS = (">=", "<=", "==", ">", "<")
_EPS = 1e-9
_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
_REF = r"[A-Za-z0-9_][^\s<>=!]*"
_RULE_RE = re.compile(rf"^\s*(?P<left>{_REF})\s*(?P<op>>=|<=|==|>|<)\s*(?P<right>.+?)\s*$")
_NUM_RE = re.compile(rf"^(?P<sign>[+-]?)\s*(?P<num>{_NUMBER})$")
_REF_RE = re.compile(rf"^(?P<ref>{_REF})(?:\s+(?P<sign>[+-])\s*(?P<num>{_NUMBER}))?$")
_RULE_KEYS = {"rule", "name", "significant", "max_missing_rate"}
_DROP_KEYS = {"max_drop", "baseline", "name", "significant", "max_missing_rate"}
_SIG_MODES = {False: "off", True: "lenient", "required": "required"}


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class ScoreRef:
    """``model.rest`` as written in a rule; ``rest`` is ``metric``, ``group.metric`` or ``group``."""

    model: str
    rest: str

    @property
    def text(self) -> str:
        return f"{self.model}.{self.rest}"


@dataclass
class CompareRule:
    """``left OP right_ref + offset`` or ``left OP offset`` (``right_ref`` None)."""

    text: str
    left: ScoreRef
    op: str
    right_ref: ScoreRef | None
    offset: float
    significant: str = "off"  # off | lenient | required
    name: str | None = None
    max_missing_rate: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.text


@dataclass
class DropRule:
    """Every ``key: limit`` of ``max_drop`` against a stored baseline."""

    limits: dict[str, float]
    baseline: str | None = None
    significant: str = "off"
    name: str | None = None
    max_missing_rate: float | None = None

    @property
    def text(self) -> str:
        inner = ", ".join(f"{k}: {v:g}" for k, v in self.limits.items())
        return f"max_drop {{{inner}}} vs baseline {self.baseline or '(default)'}"

    @property
    def label(self) -> str:
        return self.name or self.text


Rule = CompareRule | DropRule


def _bad(rule: Any, why: str, where: str) -> HarnessError:
    return HarnessError(f"{where}: bad gate rule {rule!r}: {why}.", fix=f"Grammar: {GRAMMAR}.")


def _parse_ref(text: str, rule: Any, where: str) -> ScoreRef:
    model, dot, rest = text.partition(".")
    if not dot or not model or not rest or rest.startswith(".") or rest.endswith("."):
        raise _bad(rule, f"'{text}' is not model.metric or model.group.metric", where)
    return ScoreRef(model, rest)


def _parse_significant(value: Any, rule: Any, where: str) -> str:
    if isinstance(value, bool):
        return _SIG_MODES[value]
    if isinstance(value, str) and value.strip().lower() in ("required", "require", "strict"):
        return "required"
    raise _bad(rule, f"significant must be true, false or 'required' (got {value!r})", where)


def _parse_rate(value: Any, rule: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _bad(rule, f"max_missing_rate must be a number from 0 to 1 (got {value!r})", where)
    return float(value)


def parse_rule_string(text: str, *, where: str = "gates") -> CompareRule:
    """One rule string -> ``CompareRule``; HarnessError naming the rule and the grammar."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(text, "empty rule", where)
    m = _RULE_RE.match(text)
    if not m:
        raise _bad(text, "expected 'SCORE OP VALUE' with OP one of >= > <= < ==", where)
    left = _parse_ref(m["left"], text, where)
    right = m["right"]
    if any(op in right for op in ("<", ">", "=")):
        raise _bad(text, "only one comparison operator is allowed", where)
    num = _NUM_RE.match(right)
    if num:
        value = float(num["num"]) * (-1 if num["sign"] == "-" else 1)
        return CompareRule(text=text.strip(), left=left, op=m["op"], right_ref=None, offset=value)
    ref = _REF_RE.match(right)
    if not ref:
        raise _bad(text, f"right side '{right}' is not a number or 'model.metric [+|- number]' "
                         "(put spaces around + and -)", where)
    offset = float(ref["num"]) * (-1 if ref["sign"] == "-" else 1) if ref["num"] else 0.0
    return CompareRule(text=text.strip(), left=left, op=m["op"], right_ref=_parse_ref(ref["ref"], text, where),
                       offset=offset)


def parse_rule(item: Any, *, where: str = "gates") -> Rule:
    """A rule as written in YAML (string or mapping) -> ``CompareRule`` | ``DropRule``."""
    if isinstance(item, (CompareRule, DropRule)):
        return item
    if isinstance(item, str):
        return parse_rule_string(item, where=where)
    if not isinstance(item, dict):
        raise _bad(item, f"expected a string or a mapping, got {type(item).__name__}", where)
    if "max_drop" in item:
        unknown = set(item) - _DROP_KEYS
        if unknown:
            raise _bad(item, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                             f"(allowed: {', '.join(sorted(_DROP_KEYS))})", where)
        limits = item["max_drop"]
        if not isinstance(limits, dict) or not limits:
            raise _bad(item, "max_drop must be a non-empty mapping {METRIC: DROP, ...}", where)
        clean: dict[str, float] = {}
        for key, val in limits.items():
            if not isinstance(key, str) or not key or key.startswith(".") or key.endswith(".") or " " in key:
                raise _bad(item, f"max_drop key {key!r} is not metric, group.metric or model[.group].metric", where)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
                raise _bad(item, f"max_drop.{key} must be a number >= 0 (got {val!r})", where)
            clean[key] = float(val)
        base = item.get("baseline")
        if base is not None and not isinstance(base, str):
            raise _bad(item, "baseline must be a name or a path", where)
        name = item.get("name")
        return DropRule(limits=clean, baseline=base, significant=_parse_significant(item.get("significant", False),
                                                                                     item, where),
                        name=str(name) if name is not None else None,
                        max_missing_rate=_parse_rate(item.get("max_missing_rate"), item, where))
    if "rule" not in item:
        raise _bad(item, "a mapping needs 'rule:' or 'max_drop:'", where)
    unknown = set(item) - _RULE_KEYS
    if unknown:
        raise _bad(item, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                         f"(allowed: {', '.join(sorted(_RULE_KEYS))})", where)
    rule = parse_rule_string(item["rule"], where=where)
    rule.significant = _parse_significant(item.get("significant", False), item, where)
    if rule.significant == "required" and rule.op == "==":
        raise _bad(item, "'==' cannot be required to hold significantly; use significant: true", where)
    name = item.get("name")
    rule.name = str(name) if name is not None else None
    rule.max_missing_rate = _parse_rate(item.get("max_missing_rate"), item, where)
    return rule


def parse_rules(items: Iterable[Any] | None, *, where: str = "gates") -> list[Rule]:
    if items is None:
        return []
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise HarnessError(f"{where}: expected a list of rules, got {type(items).__name__}", fix=f"Grammar: {GRAMMAR}.")
    return [parse_rule(it, where=f"{where}[{i}]") for i, it in enumerate(items)]


# --------------------------------------------------------------------------- score lookup


@dataclass
class _Absent:
    """A score that should exist but does not (the gate fails closed, exit 1)."""

    reason: str


@dataclass
class _Found:
    address: str
    value: float
    ci: tuple[float, float] | None
    higher_is_better: bool
    group: str
    metric: str


class _Scores:
    """Address resolution over a scores.json-shaped ``groups`` mapping (a run or a baseline)."""

    def __init__(self, groups: dict[str, Any], *, label: str, models: Iterable[str] = (),
                 expected_groups: Iterable[str] = (), judge_rate: float | None = None):
        self.groups = {g: b for g, b in groups.items() if isinstance(b, dict)}
        self.label = label
        ms: list[str] = list(models)
        for body in self.groups.values():
            for m in body.get("models") or {}:
                if m not in ms:
                    ms.append(m)
        self.models = ms
        self.expected = [g for g in expected_groups if g not in self.groups]
        self.judge_rate = judge_rate
        self.metric_index: dict[str, list[str]] = {}
        for g, body in self.groups.items():
            for entry in (body.get("models") or {}).values():
                for metric in entry or {}:
                    gs = self.metric_index.setdefault(metric, [])
                    if g not in gs:
                        gs.append(g)

    def group_metrics(self, group: str) -> list[str]:
        out: list[str] = []
        for entry in (self.groups[group].get("models") or {}).values():
            for metric in entry or {}:
                if metric not in out:
                    out.append(metric)
        return out

    def known(self) -> str:
        addrs = []
        for g in self.groups:
            for metric in self.group_metrics(g):
                addrs.append(f"{g}.{metric}")
        return ", ".join(addrs) or "(none)"

    def check_model(self, model: str, where: str) -> None:
        if model not in self.models:
            raise HarnessError(f"{where}: unknown model '{model}' in {self.label}; "
                               f"known models: {', '.join(self.models) or '(none)'}.",
                               fix="Use a model name from the run's config.")

    def _missing_group(self, name: str) -> _Absent | None:
        if name in self.expected:
            return _Absent(f"'{name}' has no scores in {self.label}: it was configured but did not run")
        if name == "judge":
            return _Absent(f"no judge scores in {self.label} (judge disabled, unreachable or failed)")
        return None

    def resolve(self, rest: str, where: str) -> tuple[str, str] | _Absent:
        """``rest`` (after ``model.``) -> (group, metric), an _Absent, or HarnessError."""
        if rest in self.metric_index:
            gs = self.metric_index[rest]
            if len(gs) == 1:
                return gs[0], rest
            if "all" in gs:
                return "all", rest
            raise HarnessError(f"{where}: metric '{rest}' is in several groups ({', '.join(gs)}) of {self.label}.",
                               fix=f"Name the group, e.g. MODEL.{gs[0]}.{rest}.")
        if rest in self.groups:
            metrics = self.group_metrics(rest)
            if len(metrics) == 1 or (metrics and self.groups[rest].get("kind") == "judge"):
                return rest, metrics[0]
            if not metrics:
                return _Absent(f"group '{rest}' of {self.label} has no scores")
            raise HarnessError(f"{where}: group '{rest}' has several metrics ({', '.join(metrics)}).",
                               fix=f"Name one, e.g. MODEL.{rest}.{metrics[0]}.")
        absent = self._missing_group(rest)
        if absent:
            return absent
        parts = rest.split(".")
        for i in range(len(parts) - 1, 0, -1):
            group, metric = ".".join(parts[:i]), ".".join(parts[i:])
            if group in self.groups:
                if metric in self.group_metrics(group):
                    return group, metric
                raise HarnessError(f"{where}: unknown metric '{metric}' in group '{group}' of {self.label}; "
                                   f"known: {', '.join(self.group_metrics(group)) or '(none)'}")
            absent = self._missing_group(group)
            if absent:
                return absent
        if self.expected:
            return _Absent(f"'{rest}' not found in {self.label}; configured but not run: "
                           f"{', '.join(self.expected)}")
        raise HarnessError(f"{where}: unknown metric '{rest}' in {self.label}; known: {self.known()}.",
                           fix="Write model.metric or model.group.metric with one of these.")

    def lookup(self, model: str, rest: str, where: str, rate: float | None) -> _Found | _Absent:
        self.check_model(model, where)
        res = self.resolve(rest, where)
        if isinstance(res, _Absent):
            return res
        return self.get(model, res[0], res[1], rate)

    def get(self, model: str, group: str, metric: str, rate: float | None) -> _Found | _Absent:
        address = f"{model}.{group}.{metric}"
        body = self.groups.get(group) or {}
        entry = (body.get("models") or {}).get(model)
        if not isinstance(entry, dict) or not entry:
            return _Absent(f"{model} has no scores in group '{group}' of {self.label} (did it run for {model}?)")
        mv = entry.get(metric)
        if not isinstance(mv, dict):
            return _Absent(f"{address}: no value in {self.label}")
        n = int(mv.get("n") or 0)
        missing = int(mv.get("missing") or 0)
        value = mv.get("value")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return _Absent(f"{address} has no value in {self.label} (n={n}, missing={missing})")
        limit = rate if rate is not None else (self.judge_rate if body.get("kind") == "judge" else None)
        total = n + missing
        if limit is not None and total and missing / total > limit + _EPS:
            what = "judge verdicts" if body.get("kind") == "judge" else "values"
            return _Absent(f"{address}: {what} missing for {missing}/{total} ({missing / total:.0%}) "
                           f"> max_missing_rate {limit:.0%}")
        ci = mv.get("ci")
        ci_t = (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 \
            and all(isinstance(c, (int, float)) and math.isfinite(c) for c in ci) else None
        return _Found(address, float(value), ci_t, bool(mv.get("higher_is_better", True)), group, metric)

    def paired(self, group: str, metric: str, a: str, b: str) -> tuple[float, tuple[float, float] | None,
                                                                         bool | None] | None:
        """The stored paired test of a vs b as (diff a-b, ci of diff, significant), or None."""
        for pt in self.groups.get(group, {}).get("paired") or []:
            if not isinstance(pt, dict) or pt.get("metric") != metric:
                continue
            sign = 1 if (pt.get("a"), pt.get("b")) == (a, b) else -1 if (pt.get("a"), pt.get("b")) == (b, a) else 0
            if not sign or not isinstance(pt.get("diff"), (int, float)):
                continue
            ci = pt.get("ci")
            ci_t = None
            if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
                ci_t = (float(ci[0]), float(ci[1])) if sign > 0 else (-float(ci[1]), -float(ci[0]))
            sig = pt.get("significant")
            return sign * float(pt["diff"]), ci_t, (bool(sig) if sig is not None else None)
        return None


# --------------------------------------------------------------------------- evaluation


@dataclass
class GateRow:
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


def _cmp(x: float, op: str, y: float) -> bool:
    if op == ">=":
        return x >= y - _EPS
    if op == ">":
        return x > y + _EPS
    if op == "<=":
        return x <= y + _EPS
    if op == "<":
        return x < y - _EPS
    return abs(x - y) <= _EPS


def _interval_ok(lo: float, hi: float, op: str, mode: str) -> bool:
    """Does ``q OP 0`` hold for some (lenient) / every (required) q in [lo, hi]?"""
    if mode == "required":
        return _cmp(lo, op, 0.0) and _cmp(hi, op, 0.0)
    if op == "==":
        return lo <= _EPS and hi >= -_EPS
    return _cmp(hi, op, 0.0) or _cmp(lo, op, 0.0)


def _f(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}"


def _ci(lo: float, hi: float) -> str:
    return f"[{_f(lo)}, {_f(hi)}]"


def _absent_row(rule: str, name: str | None, reason: str, actual: float | None = None,
                threshold: float | None = None) -> GateRow:
    return GateRow(rule, actual, threshold, False, f"fail-closed: {reason}", name)


def _eval_compare(rule: CompareRule, scores: _Scores, where: str) -> GateRow:
    left = scores.lookup(rule.left.model, rule.left.rest, where, rule.max_missing_rate)
    right = None
    if rule.right_ref is not None:
        right = scores.lookup(rule.right_ref.model, rule.right_ref.rest, where, rule.max_missing_rate)
    for side in (left, right):
        if isinstance(side, _Absent):
            return _absent_row(rule.text, rule.name, side.reason,
                               left.value if isinstance(left, _Found) else None)
    assert isinstance(left, _Found)
    threshold = rule.offset if right is None else right.value + rule.offset
    point_ok = _cmp(left.value, rule.op, threshold)
    verdict = f"{_f(left.value)} {rule.op} {_f(threshold)}" if point_ok else \
        f"{_f(left.value)} is not {rule.op} {_f(threshold)}"
    if rule.significant == "off":
        return GateRow(rule.text, left.value, threshold, point_ok, verdict, rule.name, rule.op)

    # statistical mode: an interval for q = left - threshold, then "q OP 0"
    interval: tuple[float, float] | None = None
    how = ""
    if right is None:
        if left.ci:
            interval = (left.ci[0] - rule.offset, left.ci[1] - rule.offset)
            how = f"95% CI of {left.address} {_ci(*left.ci)}"
    else:
        pt = None
        if left.group == right.group and left.metric == right.metric:
            pt = scores.paired(left.group, left.metric, rule.left.model, rule.right_ref.model)
        if pt and pt[1]:
            interval = (pt[1][0] - rule.offset, pt[1][1] - rule.offset)
            how = f"paired test: 95% CI of {rule.left.model} - {rule.right_ref.model} {_ci(*pt[1])}"
        elif pt and pt[2] is not None and abs(rule.offset) <= _EPS:
            # a test with a p-value but no interval: its 'significant' flag decides
            sig, holds = pt[2], _cmp(pt[0], rule.op, 0.0)
            if rule.significant == "required":
                ok = sig and holds
            else:
                ok = holds or not sig
            return GateRow(rule.text, left.value, threshold, ok,
                           f"{verdict}; paired test diff {_f(pt[0])} "
                           f"{'significant' if sig else 'not significant'}", rule.name, rule.op)
        elif left.ci and right.ci:
            interval = (left.ci[0] - right.ci[1] - rule.offset, left.ci[1] - right.ci[0] - rule.offset)
            off = f" {'+' if rule.offset > 0 else '-'} {_f(abs(rule.offset))}" if abs(rule.offset) > _EPS else ""
            how = f"no paired test; 95% CIs {_ci(*left.ci)} vs {_ci(*right.ci)}{off}"
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


def _paired_bootstrap(diffs: list[float], n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    n = len(arr)
    means = np.empty(n_resamples)
    chunk = max(1, 1_000_000 // n)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        means[start:stop] = arr[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


_MIN_PAIRED = 5


def _drop_evidence(cur: _Found, base: _Found, baseline: Baseline, model: str, run_dir: Path,
                   run_groups: dict[str, Any]) -> tuple[tuple[float, float], str] | None:
    """An interval for the drop (positive = worse than baseline) and how it was computed."""
    sign = 1.0 if cur.higher_is_better else -1.0
    b_vals = baseline.sample_values(cur.group, model, cur.metric)
    if b_vals:
        c_vals = per_sample_values(run_dir, run_groups, cur.group, model, cur.metric)
        if c_vals:
            keys = [k for k in c_vals if k in b_vals]
            # the aggregate must be the mean of the samples, or a paired mean test says nothing about it
            consistent = (
                len(keys) >= _MIN_PAIRED
                and math.isclose(sum(c_vals.values()) / len(c_vals), cur.value, rel_tol=1e-6, abs_tol=1e-9)
                and math.isclose(sum(b_vals.values()) / len(b_vals), base.value, rel_tol=1e-6, abs_tol=1e-9)
            )
            if consistent:
                lo, hi = _paired_bootstrap([c_vals[k] - b_vals[k] for k in keys])
                d1, d2 = sorted((-sign * lo, -sign * hi))  # drop = -(current - baseline) when higher is better
                return (d1, d2), f"paired bootstrap over {len(keys)} shared samples"
    if cur.ci:
        drop = (sign * (base.value - cur.ci[1]), sign * (base.value - cur.ci[0]))
        return (min(drop), max(drop)), f"baseline vs current 95% CI {_ci(*cur.ci)}"
    return None


def _eval_drop(rule: DropRule, scores: _Scores, baseline: Baseline, run_dir: Path, where: str) -> list[GateRow]:
    bscores = _Scores(baseline.groups, label=f"baseline '{baseline.name}'", models=baseline.models)
    all_models = set(scores.models) | set(bscores.models)
    rows: list[GateRow] = []
    for key, limit in rule.limits.items():
        first, _, tail = key.partition(".")
        if tail and first in all_models:
            targets, rest = [first], tail
        else:
            targets, rest = None, key
        res = bscores.resolve(rest, f"{where} max_drop.{key}")
        if isinstance(res, _Absent):
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
            if isinstance(base, _Absent):
                rows.append(_absent_row(text, rule.name, base.reason))
                continue
            if model not in scores.models:
                rows.append(_absent_row(text, rule.name, f"model {model} of the baseline is not in this run"))
                continue
            if group not in scores.groups:
                reason = scores._missing_group(group) or _Absent(f"group '{group}' is not in {scores.label}")
                rows.append(_absent_row(text, rule.name, reason.reason))
                continue
            cur = scores.get(model, group, metric, rule.max_missing_rate)
            if isinstance(cur, _Absent):
                rows.append(_absent_row(text, rule.name, cur.reason))
                continue
            sign = 1.0 if base.higher_is_better else -1.0
            drop = sign * (base.value - cur.value)
            threshold = base.value - sign * limit
            point_fail = drop > limit + _EPS
            verdict = f"drop {_f(drop)} {'>' if point_fail else '<='} {limit:g} (baseline {_f(base.value)})"
            if rule.significant == "off":
                rows.append(GateRow(text, cur.value, threshold, not point_fail, verdict, rule.name))
                continue
            ev = _drop_evidence(cur, base, baseline, model, run_dir, scores.groups)
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
                ok = dhi <= limit + _EPS
                tail_txt = "drop shown to be within the limit" if ok else "drop not shown to be within the limit"
            else:
                ok = not (point_fail and dlo > limit + _EPS)
                tail_txt = ("significant drop" if not ok else
                            "within noise: not a significant drop" if point_fail else "ok")
            rows.append(GateRow(text, cur.value, threshold, ok,
                                f"{verdict}; {how}: drop 95% CI {_ci(dlo, dhi)}: {tail_txt}", rule.name))
    return rows


def _read_run_config(run: Path) -> dict[str, Any]:
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise HarnessError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    return data if isinstance(data, dict) else {}


def _expected_groups(cfg: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for t in cfg.get("tasks") or []:
        if isinstance(t, str):
            out.append(Path(t).stem if t.endswith((".yaml", ".yml")) else t)
    for b in cfg.get("benchmarks") or []:
        name = b.get("name") if isinstance(b, dict) else b
        if isinstance(name, str):
            out.append(name)
    judge = cfg.get("judge")
    if isinstance(judge, dict) and str(judge.get("backend", "none")) not in ("none", "", "None"):
        out.append("judge")
    return out


def _judge_rate(cfg: dict[str, Any]) -> float | None:
    judge = cfg.get("judge")
    if isinstance(judge, dict) and isinstance(judge.get("max_missing_rate"), (int, float)):
        return float(judge["max_missing_rate"])
    return None


def run_gates(run_dir: str | Path, rules: Iterable[Any] | None = None, baseline_path: str | Path | None = None, *,
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
    run = Path(run_dir)
    doc = read_scores(run)
    cfg = _read_run_config(run)
    where = "gates"
    if rules is None:
        rules = cfg.get("gates") or []
        where = f"{run / 'config.yaml'}: gates"
        if default_baseline is None:
            default_baseline = cfg.get("baseline")
    parsed = parse_rules(rules, where=where)
    if not parsed:
        raise HarnessError(f"no gate rules to check for {run}.",
                           fix="Add 'gates:' to harness.yaml or pass --config FILE with 'gates:'.")
    info: dict[str, Any] = {}
    if (run / "run.json").is_file():
        raw = read_json(run / "run.json", "run.json")
        info = raw if isinstance(raw, dict) else {}
    cfg_models = list((cfg.get("models") or {}).keys()) if isinstance(cfg.get("models"), dict) else []
    rate = max_missing_rate if max_missing_rate is not None else _judge_rate(cfg)
    scores = _Scores(doc["groups"], label=f"run {doc.get('run_id') or run.name}",
                     models=[*(doc.get("models") or []), *cfg_models],
                     expected_groups=_expected_groups(cfg), judge_rate=0.2 if rate is None else rate)

    report = GateReport(run_id=doc.get("run_id") or info.get("run_id") or run.name, run_dir=str(run))
    search_dirs = [*search, Path.cwd(), run.resolve().parent.parent]
    loaded: dict[str, Baseline] = {}
    for i, rule in enumerate(parsed):
        here = f"{where}[{i}] '{rule.label}'"
        if isinstance(rule, CompareRule):
            report.rows.append(_eval_compare(rule, scores, here))
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


# --------------------------------------------------------------------------- output


def format_table(report: GateReport):
    """The report as a rich Table (✓/✗ per rule)."""
    from rich.table import Table

    n_pass = sum(r.passed for r in report.rows)
    table = Table(title=f"Gates for {report.run_id}: {n_pass}/{len(report.rows)} passed", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("rule", overflow="fold")
    table.add_column("actual", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("reason", overflow="fold")
    for r in report.rows:
        mark = "[green]PASS[/green]" if r.passed else "[bold red]FAIL[/bold red]"
        label = f"{r.name}: {r.rule}" if r.name else r.rule
        table.add_row(mark, _esc(label), _f(r.actual), _f(r.threshold), _esc(r.reason))
    return table


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(report: GateReport) -> str:
    n_pass = sum(r.passed for r in report.rows)
    head = "passed" if report.passed else "FAILED"
    icon = "✅" if report.passed else "❌"
    lines = [f"### {icon} Gates {head}: {n_pass}/{len(report.rows)} rules passed (run `{report.run_id}`)", "",
             "| | rule | actual | threshold | reason |", "|---|---|---:|---:|---|"]
    for r in report.rows:
        label = f"**{r.name}**: `{r.rule}`" if r.name else f"`{r.rule}`"
        lines.append(f"| {'✅' if r.passed else '❌'} | {_md(label)} | {_f(r.actual)} | {_f(r.threshold)} "
                     f"| {_md(r.reason)} |")
    return "\n".join(lines) + "\n"


def write_junit(report: GateReport, path: str | Path) -> Path:
    """One ``<testcase>`` per rule; a failed rule has a ``<failure message=...>``."""
    import xml.etree.ElementTree as ET
    from datetime import datetime, timezone

    failures = len(report.failures)
    suites = ET.Element("testsuites", name="harness", tests=str(len(report.rows)), failures=str(failures),
                        errors="0", skipped="0", time="0")
    suite = ET.SubElement(suites, "testsuite", name=f"harness gates ({report.run_id})",
                          tests=str(len(report.rows)), failures=str(failures), errors="0", skipped="0", time="0",
                          timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    props = ET.SubElement(suite, "properties")
    for k, v in (("run_id", report.run_id), ("run_dir", report.run_dir), ("baseline", report.baseline)):
        if v:
            ET.SubElement(props, "property", name=k, value=str(v))
    seen: dict[str, int] = {}
    for r in report.rows:
        name = f"{r.name}: {r.rule}" if r.name else r.rule
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} #{seen[name]}"
        case = ET.SubElement(suite, "testcase", classname="harness.gate", name=name, time="0")
        detail = f"actual={_f(r.actual)} threshold={_f(r.threshold)}: {r.reason}"
        if r.passed:
            ET.SubElement(case, "system-out").text = detail
        else:
            fail = ET.SubElement(case, "failure", message=r.reason, type="GateFailed")
            fail.text = detail
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(suites)
    ET.ElementTree(suites).write(out, encoding="utf-8", xml_declaration=True)
    return out


def load_gate_config(path: str | Path) -> tuple[list[Any], str | None, float | None, Path]:
    """``--config FILE``: a full harness.yaml (has ``models:``) or a plain gate file with
    ``gates:`` and optionally ``baseline:`` / ``max_missing_rate:``. Returns (rules, baseline,
    judge missing-rate default, folder of the file)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"gate config not found: {p}", fix="Pass a harness.yaml or a YAML file with 'gates:'.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise HarnessError(f"{p}: not valid YAML: {str(err).splitlines()[0]}", fix="Fix the YAML syntax.") from None
    if isinstance(data, list):
        data = {"gates": data}
    if not isinstance(data, dict):
        raise HarnessError(f"{p}: expected a mapping with 'gates:'")
    if "models" in data:
        from harness.config import load_config

        cfg = load_config(p)
        rules, base, rate = cfg.gates, cfg.baseline, cfg.judge.max_missing_rate
    else:
        unknown = set(data) - {"gates", "baseline", "max_missing_rate"}
        if unknown:
            raise HarnessError(f"{p}: unknown key(s) {', '.join(sorted(map(str, unknown)))} in a gate file",
                               fix="A gate file has 'gates:' and optionally 'baseline:' and 'max_missing_rate:'.")
        rules, base, rate = data.get("gates"), data.get("baseline"), data.get("max_missing_rate")
        if base is not None and not isinstance(base, str):
            raise HarnessError(f"{p}: 'baseline' must be a name or a path")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
            raise HarnessError(f"{p}: 'max_missing_rate' must be a number from 0 to 1")
    if not rules:
        raise HarnessError(f"{p}: no 'gates:' rules", fix=f"Grammar: {GRAMMAR}.")
    parse_rules(rules, where=f"{p}: gates")  # fail early, naming the file
    return list(rules), base, rate, p.resolve().parent


def load_rules(path: str | Path) -> tuple[list[Any], str | None]:
    """The rules and default baseline of a harness.yaml or gate file (see load_gate_config)."""
    rules, base, _rate, _folder = load_gate_config(path)
    return rules, base


def check_gates(run_dir: str | Path, config: str | Path | None = None,
                baseline: str | Path | None = None) -> GateReport:
    """The report ``gate_main`` prints: the run's own gates, or those of ``config`` (a
    harness.yaml or gate file, whose ``baseline:`` and judge missing-rate limit apply and
    whose folder's ``baselines/`` is searched). ``baseline`` overrides every max_drop baseline."""
    if config is None:
        return run_gates(run_dir, None, baseline)
    rules, base, rate, folder = load_gate_config(config)
    return run_gates(run_dir, rules, baseline, default_baseline=base, max_missing_rate=rate, search=[folder])


def gate_main(run_dir: str | Path, config: str | Path | None = None, baseline: str | Path | None = None,
              junit: str | Path | None = None, *, console=None) -> int:
    """What ``harness gate RUN_DIR [--config F] [--baseline B] [--junit F]`` does.

    Prints the table, writes JUnit (when asked), appends Markdown to $GITHUB_STEP_SUMMARY
    (when set) and returns 0 when every rule passed, 1 otherwise. Input mistakes raise
    HarnessError (the CLI exits 2).
    """
    report = check_gates(run_dir, config, baseline)
    if console is None:
        from rich.console import Console

        console = Console()
    console.print(format_table(report))
    if junit:
        out = write_junit(report, junit)
        console.print(f"JUnit report: {out}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(to_markdown(report) + "\n")
        except OSError as err:
            console.print(f"[yellow]could not append to GITHUB_STEP_SUMMARY ({summary}): {err}[/yellow]")
    if not report.passed:
        console.print(f"[bold red]{len(report.failures)} of {len(report.rows)} gate(s) failed[/bold red]")
    return report.exit_code
