"""report.html: one self-contained page (inline CSS, SVG and a small vanilla-JS sample browser).

Jinja2 runs with autoescape on for every template, so model outputs, references and judge
rationales render as text. The sample data is embedded as JSON in a
``<script type="application/json">`` block with every ``<``, ``>`` and ``&`` written as a
``\\u00XX`` escape, so no sample text can close the script tag; the browser script puts
text into the page with ``textContent`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

import harness.report.arena as arena_text
from harness.report.charts import bar_chart, line_chart, model_colors
from harness.report.judge_card import card_rows, self_preference_line
from harness.report.layout import fold, is_constant
from harness.report.rows import SIG_NOTE, Row, fmt, fmt_count, fmt_seconds
from harness.report.view import ReportView, engine_label, main_metric, parity_label

TEMPLATES = Path(__file__).parent / "templates"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["seconds"] = fmt_seconds
    env.filters["count"] = fmt_count
    env.globals.update(engine_label=engine_label, parity_label=parity_label, card_rows=card_rows,
                       self_preference_line=self_preference_line, fold=fold, family_starts=family_starts)
    env.filters["tojson_obj"] = _readable
    return env


def _readable(v: Any) -> Any:
    """A value for a table cell or pill: a list of plain values joined with commas, other
    containers as JSON."""
    if isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v):
        return ", ".join(str(x) for x in v)
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v


def script_json(data: Any) -> Markup:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' appear literally."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def family_starts(families) -> dict[int, str]:
    """Row index -> the family title whose block starts there (``layout.RowGroup`` list)."""
    out, i = {}, 0
    for g in families or []:
        out[i] = g.title
        i += len(g.rows)
    return out


def summary_charts(rows: list[Row], models: list[str], colors: dict[str, str]) -> list[Markup]:
    """A bar chart per row with a better direction and a difference between models (a chart of
    lengths, or of one value for all, says nothing); none for a row without a readable value."""
    charts = []
    for r in rows:
        if r.higher_is_better is None or is_constant(r):
            continue
        bars = [(c.model, c.mv.value if c.readable else None, tuple(c.mv.ci) if c.readable and c.mv.ci else None)
                for c in r.cells]
        if any(v is not None for _, v, _ in bars):
            charts.append(Markup(bar_chart(r.label, bars, colors, higher_is_better=r.higher_is_better)))
    return charts


REWARD_COLORS = {"rewards/chosen": "#059669", "rewards/rejected": "#b91c1c", "rewards/margins": "#2563eb",
                 "rewards/accuracies": "#9333ea"}


def training_charts(view: ReportView, colors: dict[str, str]) -> dict[str, list[Markup]]:
    """Per trained model: its loss curves, and trl's DPO rewards and reward accuracy when logged."""
    out: dict[str, list[Markup]] = {}
    for t in view.training:
        c = colors.get(t.model, "#2563eb")
        svgs = [line_chart(f"{t.model}: loss", [("train loss", t.loss, c, False),
                                                ("eval loss", t.eval_loss, "#111827", True)], width=420)]
        for title, curves in ((f"{t.model}: DPO rewards", t.rewards), (f"{t.model}: reward accuracy", t.reward_acc)):
            svgs.append(line_chart(title, [(k.split("/")[-1], pts, REWARD_COLORS.get(k, "#6b7280"), False)
                                           for k, pts in curves], width=420))
        if any(svgs):
            out[t.model] = [Markup(s) for s in svgs if s]
    return out


def browser_data(view: ReportView) -> dict[str, Any]:
    return {
        "models": view.models,
        "metrics": view.sample_metrics,
        "default_metric": main_metric(view),
        "key_metrics": view.key_metrics,
        "directions": view.directions,
        "tasks": sorted({it["task"] for it in view.items}),
        "items": view.items,
    }


def render_html(view: ReportView) -> str:
    colors = model_colors(view.models)
    tmpl = environment().get_template("report.html.j2")
    return tmpl.render(
        v=view, colors=colors, sig_note=SIG_NOTE,
        charts=summary_charts(view.summary, view.models, colors),
        train_charts=training_charts(view, colors),
        data=script_json(browser_data(view)), at=arena_text,
    )
