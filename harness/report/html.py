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
                       self_preference_line=self_preference_line)
    env.filters["tojson_obj"] = lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
    return env


def script_json(data: Any) -> Markup:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' appear literally."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def summary_charts(rows: list[Row], models: list[str], colors: dict[str, str]) -> list[Markup]:
    charts = []
    for r in rows:
        bars = [(c.model, c.mv.value if c.readable else None, tuple(c.mv.ci) if c.readable and c.mv.ci else None)
                for c in r.cells]
        if any(v is not None for _, v, _ in bars):
            charts.append(Markup(bar_chart(r.label, bars, colors, higher_is_better=r.higher_is_better)))
    return charts


def training_charts(view: ReportView, colors: dict[str, str]) -> dict[str, Markup]:
    out = {}
    for t in view.training:
        c = colors.get(t.model, "#2563eb")
        svg = line_chart(f"{t.model}: loss", [("train loss", t.loss, c, False), ("eval loss", t.eval_loss, "#111827", True)])
        if svg:
            out[t.model] = Markup(svg)
    return out


def browser_data(view: ReportView) -> dict[str, Any]:
    return {
        "models": view.models,
        "metrics": view.sample_metrics,
        "default_metric": main_metric(view),
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
