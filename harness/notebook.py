"""Runs and gate reports as notebook objects: long-form score rows (and their pandas DataFrame),
the small HTML tables Jupyter shows for a ``RunDir`` or a ``GateReport``, and their short reprs.

Pure functions over the ``scores.json`` mapping and the gate rows; pandas is imported only by
``scores_frame`` (``pip install pandas``, or the ``pandas`` extra)."""

from __future__ import annotations

import html
import math
from typing import Any

from harness.errors import HarnessError

COLUMNS = ["model", "group", "metric", "value", "lo", "hi", "n", "missing", "kind", "higher_is_better"]
# What a run's HTML table shows first, per group (the rest: ``to_pandas()``).
HEADLINE = ["rougeL", "bleu", "chrf", "bertscore_f1", "exact_match", "valid_json", "json_field_acc", "perplexity",
            "acc", "acc_norm", "win_rate"]
MAX_ROWS = 14


def score_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model x group x metric of a scores.json mapping, in the file's order:
    ``model, group, metric, value, lo, hi, n, missing, kind, higher_is_better`` (``lo``/``hi``:
    the 95% interval, None when there is none)."""
    rows = []
    for group, gdata in (doc.get("groups") or {}).items():
        for model, metrics in (gdata.get("models") or {}).items():
            for metric, mv in (metrics or {}).items():
                if not isinstance(mv, dict):
                    continue
                ci = mv.get("ci") or [None, None]
                rows.append({"model": model, "group": group, "metric": metric, "value": mv.get("value"),
                             "lo": ci[0], "hi": ci[1], "n": mv.get("n"), "missing": mv.get("missing", 0),
                             "kind": gdata.get("kind"), "higher_is_better": mv.get("higher_is_better")})
    return rows


def scores_frame(doc: dict[str, Any]):
    """``score_rows`` as a pandas DataFrame (columns ``COLUMNS``)."""
    try:
        import pandas as pd
    except ImportError:
        raise HarnessError("to_pandas() needs pandas, which is not installed",
                           fix="pip install pandas (or the package's 'pandas' extra)") from None
    return pd.DataFrame(score_rows(doc), columns=COLUMNS)


def headline(doc: dict[str, Any], limit: int = MAX_ROWS) -> tuple[list[str], list[tuple[str, str, dict]], int]:
    """(models, [(group, metric, {model: MetricValue})], rows left out): the pooled ``all`` group
    instead of its tasks when there is one, then benchmarks and judges; per group the HEADLINE
    metrics it has (else its first two)."""
    models = list(doc.get("models") or [])
    groups = doc.get("groups") or {}
    pooled = "all" in groups
    out: list[tuple[str, str, dict]] = []
    for group, gdata in groups.items():
        if pooled and gdata.get("kind") == "task" and group != "all":
            continue
        per_model = gdata.get("models") or {}
        names = list(dict.fromkeys(m for ms in per_model.values() for m in (ms or {})))
        chosen = [m for m in HEADLINE if m in names] or names[:2]
        for metric in chosen:
            out.append((group, metric, {m: (per_model.get(m) or {}).get(metric) for m in models}))
    return models, out[:limit], max(0, len(out) - limit)


def _num(v: Any) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "–"
    return f"{v:.4g}" if abs(v) >= 100 else f"{v:.3f}"


def _cell(mv: Any) -> str:
    if not isinstance(mv, dict) or mv.get("value") is None:
        return "–"
    ci = mv.get("ci")
    interval = f" <small>[{_num(ci[0])}, {_num(ci[1])}]</small>" if ci else ""
    return f"{_num(mv['value'])}{interval}"


def run_html(path: str, doc: dict[str, Any] | None, error: str | None = None) -> str:
    """A run's headline scores as an HTML table (95% intervals in brackets), for Jupyter."""
    title = f"<b>RunDir</b> <code>{html.escape(path)}</code>"
    if doc is None:
        return f"<div>{title}: {html.escape(error or 'no scores yet')}</div>"
    models, rows, left = headline(doc)
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    body = []
    for group, metric, cells in rows:
        arrow = ""
        first = next((c for c in cells.values() if isinstance(c, dict)), {})
        if first.get("higher_is_better") is not None:
            arrow = " ↑" if first["higher_is_better"] else " ↓"
        body.append(f"<tr><td>{html.escape(group)}</td><td>{html.escape(metric)}{arrow}</td>"
                    + "".join(f"<td style='text-align:right'>{_cell(cells.get(m))}</td>" for m in models) + "</tr>")
    more = f"<div><small>{left} more rows: <code>.to_pandas()</code></small></div>" if left else ""
    return (f"<div>{title} · run <code>{html.escape(str(doc.get('run_id') or ''))}</code>"
            f"<table><thead><tr><th>group</th><th>metric</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{more}</div>")


def run_repr(path: str, doc: dict[str, Any] | None) -> str:
    if doc is None:
        return f"RunDir({path!r})"
    return f"RunDir({path!r}, models={list(doc.get('models') or [])}, groups={len(doc.get('groups') or {})})"


def gate_html(report: Any) -> str:
    """A gate report as an HTML table: one row per rule, PASS/FAIL first."""
    n_pass = sum(r.passed for r in report.rows)
    verdict = "passed" if report.passed else "FAILED"
    color = "#1a7f37" if report.passed else "#cf222e"
    body = []
    for r in report.rows:
        mark = "<b style='color:#1a7f37'>PASS</b>" if r.passed else "<b style='color:#cf222e'>FAIL</b>"
        label = f"{html.escape(r.name)}: " if r.name else ""
        body.append(f"<tr><td>{mark}</td><td>{label}<code>{html.escape(r.rule)}</code></td>"
                    f"<td style='text-align:right'>{_num(r.actual)}</td>"
                    f"<td style='text-align:right'>{_num(r.threshold)}</td><td>{html.escape(r.reason)}</td></tr>")
    return (f"<div><b style='color:{color}'>Gates {verdict}</b>: {n_pass}/{len(report.rows)} rules passed "
            f"(run <code>{html.escape(str(report.run_id or ''))}</code>)"
            "<table><thead><tr><th></th><th>rule</th><th>actual</th><th>threshold</th><th>reason</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def gate_repr(report: Any) -> str:
    failed = [r.name or r.rule for r in report.failures]
    tail = f"; failed: {', '.join(failed)}" if failed else ""
    return (f"GateReport(run {report.run_id!r}: {len(report.rows) - len(failed)}/{len(report.rows)} passed"
            f"{tail})")
