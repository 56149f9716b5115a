"""How a report arranges its rows and details so the answer comes first: metric rows grouped by
family with neutral and constant rows folded away, the few key metrics a sample card shows, and
training manifests flattened into readable key/value rows. Pure functions over ``Row`` and dicts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from harness.report.rows import Row
from harness.report.verdict import FAMILIES, FAMILY_TITLES, metric_family

MAX_KEY_METRICS = 4
# trl's DPO log keys plotted beside the loss (first chart: rewards, second: reward accuracy)
DPO_REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/margins")
DPO_ACCURACY = ("rewards/accuracies",)


@dataclass
class RowGroup:
    family: str
    title: str
    rows: list[Row]


def is_constant(row: Row) -> bool:
    """Every model has the same readable value (nothing to compare; e.g. ``empty`` 0 for all)."""
    vals = [c.mv.value for c in row.cells if c.readable]
    return len(row.cells) > 1 and len(vals) == len(row.cells) and max(vals) - min(vals) < 1e-12


def row_families(groups: dict[str, dict]) -> dict[str, str]:
    """Group name -> family for the summary's rows that come from outside the pooled task group:
    benchmarks, judges and preference tasks each get a block of their own."""
    out = {}
    for g, d in groups.items():
        kind = d.get("kind")
        if kind in ("benchmark", "judge"):
            out[g] = kind
        elif kind == "task" and (d.get("info") or {}).get("type") == "preference":
            out[g] = "preference"
    return out


def fold(rows: list[Row], families: dict[str, str] | None = None) -> tuple[list[RowGroup], list[Row]]:
    """(rows with a better direction and a difference, grouped by family in FAMILIES order;
    rows folded away: no better direction, or the same value for every model). ``families``:
    group name -> family for whole groups (``row_families``); else by metric name."""
    shown: dict[str, list[Row]] = {f: [] for f in FAMILIES}
    folded: list[Row] = []
    for r in rows:
        if r.higher_is_better is None or is_constant(r):
            folded.append(r)
        else:
            shown[(families or {}).get(r.group) or metric_family(r.metric)].append(r)
    return [RowGroup(f, FAMILY_TITLES[f], shown[f]) for f in FAMILIES if shown[f]], folded


def fold_reason(row: Row) -> str:
    return "no better direction" if row.higher_is_better is None else "same value for every model"


def key_metrics(rows: list[Row], present: list[str], main: str | None = None) -> list[str]:
    """At most MAX_KEY_METRICS metric names a sample card shows for one task: ``main`` first, then
    the task's rows with a better direction and a difference, by family; only names samples have."""
    groups, _ = fold(rows)
    order = ([main] if main else []) + [r.metric for g in groups for r in g.rows]
    out: list[str] = []
    for m in order:
        if m in present and m not in out:
            out.append(m)
    return out[:MAX_KEY_METRICS]


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list)) for x in v):
        return ", ".join(_scalar(x) for x in v) if v else "–"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return "–" if v is None or v == "" else str(v)


def flatten(d: dict[str, Any], prefix: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Nested dicts as ("a.b", "value") rows; lists of scalars joined; lists of records (a log
    history) left out, they are plotted instead."""
    out: list[tuple[str, str]] = []
    for k, v in d.items():
        if k in skip:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += flatten(v, key + ".") if v else [(key, "–")]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            out.append((key, f"{len(v)} records"))
        else:
            out.append((key, _scalar(v)))
    return out


def log_curves(log: list[Any], keys: tuple[str, ...]) -> list[tuple[str, list[tuple[float, float]]]]:
    """(key, [(step, value)]) for each of ``keys`` that the manifest's log history has."""
    out = []
    for key in keys:
        pts = []
        for i, rec in enumerate(log or []):
            if not isinstance(rec, dict):
                continue
            step, v = rec.get("step", i + 1), rec.get(key)
            if isinstance(step, (int, float)) and isinstance(v, (int, float)) and math.isfinite(v):
                pts.append((float(step), float(v)))
        if pts:
            out.append((key, pts))
    return out
