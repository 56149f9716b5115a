"""What a tracker gets from a run directory: flattened params, metrics with their intervals, and
the files to attach. Pure functions over the stored JSON/YAML (no tracker imported here)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

ARTIFACTS = ("report.html", "report.md", "scores.json", "config.yaml", "run.json")
MAX_PARAM_CHARS = 500  # MLflow keeps 6000; W&B none: a long value is cut, not refused
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def safe_key(key: str) -> str:
    """A metric/param name trackers accept (MLflow: letters, digits, _ - . space /)."""
    return _UNSAFE.sub("_", key)


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings -> ``{"a.b.c": "value"}``; lists and scalars become text (JSON for lists)."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, (list, tuple)):
        text = json.dumps(obj, ensure_ascii=False, default=str)
    else:
        text = "" if obj is None else str(obj)
    if prefix:
        out[safe_key(prefix)] = text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 1] + "…"
    return out


def run_params(config: dict[str, Any], info: dict[str, Any]) -> dict[str, str]:
    """The config snapshot flattened (``models.sft.adapter``, ``generation.max_new_tokens``, ...) plus
    what identifies the run (``run.id``, ``run.config_hash``, ``run.models``, harness version)."""
    params = flatten(config)
    env = info.get("env") or {}
    extra = {"run.id": info.get("run_id"), "run.config_hash": info.get("config_hash"),
             "run.models": info.get("models_order"), "run.tasks": info.get("tasks"),
             "run.harness_version": (env.get("packages") or {}).get("harness"),
             "run.git_commit": env.get("git_commit"), "run.device": env.get("device")}
    for k, v in extra.items():
        if v not in (None, [], ""):
            params.update(flatten(v, k))
    return params


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def run_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """Every aggregate of scores.json as ``<model>/<group>/<metric>`` with ``_lo`` / ``_hi`` (its 95%
    interval), ``_n`` and ``_missing``; every paired test as ``paired/<a>-vs-<b>/<group>/<metric>``
    (the difference a - b) with ``_lo`` / ``_hi`` and ``_p``."""
    out: dict[str, float] = {}
    for group, g in (scores.get("groups") or {}).items():
        if not isinstance(g, dict):
            continue
        for model, metrics in (g.get("models") or {}).items():
            for metric, mv in (metrics or {}).items():
                value = _finite(mv.get("value")) if isinstance(mv, dict) else None
                if value is None:
                    continue
                key = safe_key(f"{model}/{group}/{metric}")
                out[key] = value
                _add_interval(out, key, mv.get("ci"))
                out[key + "_n"] = float(mv.get("n") or 0)
                if mv.get("missing"):
                    out[key + "_missing"] = float(mv["missing"])
        for p in g.get("paired") or []:
            diff = _finite(p.get("diff")) if isinstance(p, dict) else None
            if diff is None:
                continue
            key = safe_key(f"paired/{p.get('a')}-vs-{p.get('b')}/{group}/{p.get('metric')}")
            out[key] = diff
            _add_interval(out, key, p.get("ci"))
            if _finite(p.get("p_value")) is not None:
                out[key + "_p"] = float(p["p_value"])
    return out


def run_artifacts(path: Path) -> list[Path]:
    """The reports and the files that explain them, those the run has (results_<model>.json too)."""
    files = [path / name for name in ARTIFACTS if (path / name).is_file()]
    return files + sorted(path.glob("results_*.json"))


def _add_interval(out: dict[str, float], key: str, ci) -> None:
    """``key_lo`` / ``key_hi`` when ``ci`` is a finite pair."""
    ci = ci or ()
    if len(ci) == 2 and None not in (_finite(ci[0]), _finite(ci[1])):
        out[key + "_lo"], out[key + "_hi"] = float(ci[0]), float(ci[1])
