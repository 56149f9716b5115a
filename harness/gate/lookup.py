"""Score lookup: ``model.group.metric`` (and its short forms) over a scores.json-shaped ``groups``
mapping, a run's or a baseline's, with the fail-closed reasons when a score is not there."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, did_you_mean
from harness.gate.rules import EPS


@dataclass
class Absent:
    """A score that should exist but does not (the gate fails closed, exit 1)."""

    reason: str


@dataclass
class Found:
    """A score that is there: its value, 95% interval (None when not stored) and where it lives."""

    address: str
    value: float
    ci: tuple[float, float] | None
    higher_is_better: bool
    group: str
    metric: str


class ScoreTable:
    """Address resolution over a scores.json-shaped ``groups`` mapping (a run or a baseline).

    ``expected_groups`` are groups the config asked for (a missing one fails closed instead of
    being an unknown name); ``judge_rate`` is the default missing-rate limit of judge scores.
    """

    def __init__(self, groups: dict[str, Any], *, label: str, models: Iterable[str] = (),
                 expected_groups: Iterable[str] = (), judge_rate: float | None = None, coverage: Any = None,
                 vocabulary: Iterable[str] | None = None):
        self.groups = {g: b for g, b in groups.items() if isinstance(b, dict)}
        # every metric name a missing expected group could have held (``metric_vocabulary``): a
        # bare name outside it is a misspelling (exit 2), not a group that did not run (exit 1)
        self.vocabulary = None if vocabulary is None else set(vocabulary)
        self.coverage = coverage  # a records.Coverage: thinner scores fail closed (None: not checked)
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

    def missing_group(self, name: str) -> Absent | None:
        if name in self.expected:
            return Absent(f"'{name}' has no scores in {self.label}: it was configured but did not run")
        if name == "judge":
            return Absent(f"no judge scores in {self.label} (judge disabled, unreachable or failed)")
        return None

    def resolve(self, rest: str, where: str) -> tuple[str, str] | Absent:
        """``rest`` (after ``model.``) -> (group, metric), an Absent, or HarnessError."""
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
                return Absent(f"group '{rest}' of {self.label} has no scores")
            raise HarnessError(f"{where}: group '{rest}' has several metrics ({', '.join(metrics)}).",
                               fix=f"Name one, e.g. MODEL.{rest}.{metrics[0]}.")
        absent = self.missing_group(rest)
        if absent:
            return absent
        parts = rest.split(".")
        for i in range(len(parts) - 1, 0, -1):
            group, metric = ".".join(parts[:i]), ".".join(parts[i:])
            if group in self.groups:
                if metric in self.group_metrics(group):
                    return group, metric
                known = self.group_metrics(group)
                raise HarnessError(f"{where}: unknown metric '{metric}' in group '{group}' of {self.label}"
                                   f"{did_you_mean(metric, known)}; known: {', '.join(known) or '(none)'}")
            absent = self.missing_group(group)
            if absent:
                return absent
        if self.expected and (self.vocabulary is None or rest in self.vocabulary):
            return Absent(f"'{rest}' not found in {self.label}; configured but not run: "
                           f"{', '.join(self.expected)}")
        guess = did_you_mean(rest, [*self.metric_index, *(f"{g}.{m}" for g in self.groups
                                                          for m in self.group_metrics(g))]) \
            or did_you_mean(rest, sorted(self.vocabulary or ()))
        raise HarnessError(f"{where}: unknown metric '{rest}' in {self.label}{guess}; known: {self.known()}.",
                           fix="Write model.metric or model.group.metric with one of these.")

    def lookup(self, model: str, rest: str, where: str, rate: float | None) -> Found | Absent:
        self.check_model(model, where)
        res = self.resolve(rest, where)
        if isinstance(res, Absent):
            return res
        return self.get(model, res[0], res[1], rate)

    def get(self, model: str, group: str, metric: str, rate: float | None) -> Found | Absent:
        address = f"{model}.{group}.{metric}"
        body = self.groups.get(group) or {}
        entry = (body.get("models") or {}).get(model)
        if not isinstance(entry, dict) or not entry:
            return Absent(f"{model} has no scores in group '{group}' of {self.label} (did it run for {model}?)")
        mv = entry.get(metric)
        if not isinstance(mv, dict):
            return Absent(f"{address}: no value in {self.label}")
        n = int(mv.get("n") or 0)
        missing = int(mv.get("missing") or 0)
        value = mv.get("value")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return Absent(f"{address} has no value in {self.label} (n={n}, missing={missing})")
        limit = rate if rate is not None else (self.judge_rate if body.get("kind") == "judge" else None)
        total = n + missing
        if limit is not None and total and missing / total > limit + EPS:
            what = "judge verdicts" if body.get("kind") == "judge" else "values"
            return Absent(f"{address}: {what} missing for {missing}/{total} ({missing / total:.0%}) "
                           f"> max_missing_rate {limit:.0%}")
        short = self.coverage.shortfall(mv) if self.coverage is not None else None
        if short:
            return Absent(f"{address}: insufficient data in {self.label} ({short}); coverage.min_n "
                          f"{self.coverage.min_n}, max_missing_share {self.coverage.max_missing_share:g}")
        ci = mv.get("ci")
        ci_t = (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 \
            and all(isinstance(c, (int, float)) and math.isfinite(c) for c in ci) else None
        return Found(address, float(value), ci_t, bool(mv.get("higher_is_better", True)), group, metric)

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


BENCHMARK_METRICS = ("acc", "acc_norm", "exact_match")  # what a benchmark group holds (benchmarks/results.py)
PAIRWISE_METRICS = ("win", "tie", "loss", "consistency")


def metric_vocabulary(judges: Iterable[str] = ()) -> set[str]:
    """Every metric name a score group can hold: each registered metric's outputs and corpus
    score, the benchmark metrics, the judge names (``judges``: the config's ``judge.judges``, a
    name or a folder) and the pairwise judge's counts."""
    from harness.metrics import METRICS

    out = set(BENCHMARK_METRICS) | set(PAIRWISE_METRICS)
    for spec in METRICS.values():
        out.update(spec.outputs, spec.corpus)
    out.update(Path(str(j)).name for j in judges)
    return out


def expected_groups(run_info: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The groups the run set out to produce: the names of the tasks that ran (suites expanded,
    as run.json records them), ``all`` when there were several, its benchmarks, ``judge`` (when a
    judge was on) and the groups command-line flags switched off (run.json ``switched_off``). A
    missing one fails closed instead of being an unknown name."""
    tasks = run_info.get("tasks")
    if tasks is None:  # a run directory written by hand: what its config names
        tasks = [Path(t).stem if t.endswith((".yaml", ".yml")) else t for t in cfg.get("tasks") or []
                 if isinstance(t, str)]
    tasks = [t for t in tasks if isinstance(t, str)]
    out: list[str] = list(tasks)
    if len(tasks) > 1:
        out.append("all")
    out += [t for t in run_info.get("preference_tasks") or [] if isinstance(t, str)]
    benches = run_info.get("benchmarks")
    if benches is None:
        benches = [b.get("name") if isinstance(b, dict) else b for b in cfg.get("benchmarks") or []]
    out += [b for b in benches if isinstance(b, str)]
    judge = run_info.get("judge") if isinstance(run_info.get("judge"), dict) else cfg.get("judge")
    if isinstance(judge, dict) and str(judge.get("backend", "none")) not in ("none", "", "None"):
        out.append("judge")
    out += [g for g in run_info.get("switched_off") or [] if isinstance(g, str) and g not in out]
    return out


def judge_rate(cfg: dict[str, Any]) -> float | None:
    """The config's ``judge.max_missing_rate``, or None when it sets none."""
    judge = cfg.get("judge")
    if isinstance(judge, dict) and isinstance(judge.get("max_missing_rate"), (int, float)):
        return float(judge["max_missing_rate"])
    return None

