"""Stored baselines: a frozen copy of a run's scores that later runs are gated against.

``save_baseline(run_dir, name)`` writes ``baselines/<name>.json``::

    {
      "schema": 1, "kind": "harness-baseline", "name": "main",
      "created": "2025-01-01T00:00:00+00:00",        # when the baseline was saved
      "run_id": "...", "run_created": "...", "config_hash": "...", "models": ["base", "sft"],
      "source": "reports/<run-id>",
      "groups": {<group>: {"kind", "models": {<model>: {<metric>: MetricValue}}, "paired", "info"}},
      "samples": {<group>: {<model>: {<metric>: {<key>: float}}}},   # per-sample values
      "samples_omitted": [<group>, ...]                                # groups too big to keep
    }

``groups`` is the run's ``scores.json`` groups verbatim (values, intervals, n, missing,
higher_is_better), so a baseline is addressed exactly like a run (``sft.demo-en.rougeL``).
``samples`` holds each per-sample metric value keyed by ``<task>/<sample id>`` (generation
tasks, ``all``, ``judge``) or by question id (benchmarks); the gate uses them for a paired
test of "current minus baseline" on the samples both have. Groups are kept in order until
``max_values`` values in all; the rest are listed in ``samples_omitted`` (their gates then
use intervals instead of a paired test).

The run is read through ``RunDir`` (``scores()``, ``run_info()``, ``per_sample_metrics()``); this
module only writes, finds and checks baseline files. Reading a baseline never loads model code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import io
from harness.errors import HarnessError
from harness.store import RunDir

SCHEMA = 1
KIND = "harness-baseline"
BUILTIN_BASELINES = Path(__file__).resolve().parent / "demo" / "baselines"  # the demo's, shipped in the package
DEFAULT_MAX_VALUES = 200_000
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


# --------------------------------------------------------------------------- save / load


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith(".json"):
        raise HarnessError(f"baseline name {name!r} is not allowed",
                           fix="Use letters, digits, '-', '_' or '.', e.g. 'main' (saved as baselines/main.json).")


def save_baseline(run_dir: str | Path, name: str, out_dir: str | Path = "baselines", *,
                  max_values: int = DEFAULT_MAX_VALUES) -> Path:
    """Freeze a finished run's scores as ``<out_dir>/<name>.json``; returns the path written."""
    _check_name(name)
    run = RunDir(run_dir)
    scores = run.scores()
    run_info = run.run_info()
    groups = scores["groups"]
    models = list(scores.get("models") or [])
    for body in groups.values():
        for m in (body.get("models") or {}) if isinstance(body, dict) else ():
            if m not in models:
                models.append(m)

    samples: dict[str, Any] = {}
    omitted: list[str] = []
    total = 0
    for g, body in groups.items():
        if not isinstance(body, dict):
            continue
        block: dict[str, Any] = {}
        count = 0
        for m, entry in (body.get("models") or {}).items():
            if not isinstance(entry, dict) or not entry:
                continue
            per_metric = run.per_sample_metrics(g, m)
            for metric in entry:
                vals = per_metric.get(metric)
                if vals:
                    block.setdefault(m, {})[metric] = vals
                    count += len(vals)
        if not block:
            continue
        if total + count > max_values:
            omitted.append(g)
            continue
        samples[g] = block
        total += count

    doc = {
        "schema": SCHEMA,
        "kind": KIND,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": scores.get("run_id") or run_info.get("run_id") or run.path.name,
        "run_created": run_info.get("created"),
        "config_hash": scores.get("config_hash") or run_info.get("config_hash"),
        "models": models,
        "source": str(run.path),
        "groups": groups,
        "samples": samples,
        "samples_omitted": omitted,
    }
    return io.write_json(Path(out_dir) / f"{name}.json", doc, indent=1)


@dataclass
class Baseline:
    """A loaded baseline file (see the module docstring for the layout)."""

    name: str
    path: Path
    run_id: str | None
    config_hash: str | None
    created: str | None
    models: list[str]
    groups: dict[str, Any]
    samples: dict[str, Any] = field(default_factory=dict)
    samples_omitted: list[str] = field(default_factory=list)

    def sample_values(self, group: str, model: str, metric: str) -> dict[str, float] | None:
        vals = ((self.samples.get(group) or {}).get(model) or {}).get(metric)
        return vals if isinstance(vals, dict) and vals else None


def resolve_baseline_path(name_or_path: str | Path, search: list[str | Path] | tuple = ()) -> Path:
    """``name_or_path`` as a file, or ``<dir>/baselines/<name>.json`` for the first dir of
    ``search`` (then the current folder, then the demo's built-in baselines) that has it."""
    raw = str(name_or_path)
    p = Path(raw).expanduser()
    looks_like_path = raw.endswith(".json") or "/" in raw or os.sep in raw
    if p.is_file():
        return p
    if looks_like_path:
        raise HarnessError(f"baseline file not found: {p}",
                           fix="Save one with save_baseline / `harness baseline save RUN_DIR NAME`.")
    _check_name(raw)
    tried: list[Path] = []
    for d in [*search, Path.cwd(), BUILTIN_BASELINES.parent]:
        cand = Path(d) / "baselines" / f"{raw}.json"
        if cand in tried:
            continue
        tried.append(cand)
        if cand.is_file():
            return cand
    raise HarnessError(f"baseline {raw!r} not found (looked at {', '.join(str(t) for t in tried)})",
                       fix="Save one with save_baseline / `harness baseline save RUN_DIR NAME`, or pass a path.")


def load_baseline(name_or_path: str | Path, search: list[str | Path] | tuple = ()) -> Baseline:
    """Read ``baselines/<name>.json`` (or a path) and check its shape."""
    path = resolve_baseline_path(name_or_path, search)
    doc = io.read_json(path, what="baseline", fix="Save it again with `harness baseline save RUN_DIR`.")
    if not isinstance(doc, dict) or doc.get("kind") != KIND or not isinstance(doc.get("groups"), dict):
        raise HarnessError(f"{path}: not a harness baseline file (expected kind '{KIND}' and 'groups')",
                           fix="Save one with save_baseline.")
    if doc.get("schema") != SCHEMA:
        raise HarnessError(f"{path}: baseline schema {doc.get('schema')!r} is not supported (expected {SCHEMA})",
                           fix="Re-save the baseline with this version of harness.")
    return Baseline(
        name=str(doc.get("name") or path.stem),
        path=path,
        run_id=doc.get("run_id"),
        config_hash=doc.get("config_hash"),
        created=doc.get("created"),
        models=list(doc.get("models") or []),
        groups=doc["groups"],
        samples=doc.get("samples") or {},
        samples_omitted=list(doc.get("samples_omitted") or []),
    )
