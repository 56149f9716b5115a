"""The run's answer in the terminal: what `harness run` / `harness demo` print at the end and
`harness show RUN` prints again. Reads scores.json only (no samples, no model, no torch).

A table of the headline metrics (value [95% interval] per model, each model minus the one before
it with ▲/▼ and † marks), the verdict lines (report/verdict.py) and the next commands. Rich prints
plain text when stdout is not a terminal; a redirected log gets a fixed width so the table does
not wrap at 80 columns.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.records import Coverage
from harness.report.layout import is_constant
from harness.report.rows import Row
from harness.report.verdict import verdict
from harness.report.view import summary_rows
from harness.store import open_run

LOG_WIDTH = 140  # columns of a redirected log (no terminal to ask); $COLUMNS wins


def headline_rows(scores: dict, models: list[str]) -> list[Row]:
    """The summary table's rows that have a better direction and a difference between models
    (lengths and one-value-for-all rows stay in the report)."""
    groups = {k: v for k, v in (scores.get("groups") or {}).items() if isinstance(v, dict)}
    rows = summary_rows(groups, models, Coverage.from_dict(scores.get("coverage")))
    return [r for r in rows if r.higher_is_better is not None and not is_constant(r)]


def _cell(r: Row, i: int, with_ci: bool = True) -> str:
    from rich.markup import escape

    c = r.cells[i]
    if c.insufficient:
        return "[dim]insufficient[/]"
    text = escape(r.value_text(c, with_ci))
    return f"[bold green]{text}[/]" if c.best else text


def _delta(r: Row, model: str, ref: str) -> str:
    d = next((d for d in r.deltas if d.model == model and d.ref == ref), None)
    if d is None:
        return "–"
    text = r.delta_text(d)
    if d.significant and d.better is not None:
        return f"[{'green' if d.better else 'red'}]{text}[/]"
    return text


def summary_table(scores: dict, models: list[str], with_ci: bool = True):
    from rich import box
    from rich.table import Table

    pairs = [(models[i], models[i - 1]) for i in range(1, len(models))]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("metric")
    for m in models:
        table.add_column(m, justify="right", no_wrap=True)
    for a, b in pairs:
        table.add_column(f"{a} − {b}", justify="right")  # a narrow terminal wraps these, not the values
    for r in headline_rows(scores, models):
        arrow = "↑" if r.higher_is_better else "↓"
        table.add_row(f"{r.label} {arrow}", *[_cell(r, i, with_ci) for i in range(len(models))],
                      *[_delta(r, a, b) for a, b in pairs])
    return table


def console_for(stream=None):
    from rich.console import Console

    stream = stream or sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    width = None if tty or os.environ.get("COLUMNS") else LOG_WIDTH
    return Console(file=stream, width=width, highlight=False, soft_wrap=True)


def print_summary(run_dir: str | Path, console=None) -> None:
    """The results table, the verdict and the next commands of a stored run."""
    from rich.markup import escape
    from rich.measure import Measurement

    run = open_run(run_dir)
    scores = run.scores()
    models = [str(m) for m in scores.get("models") or []]
    console = console or console_for()
    console.print()
    console.print(f"[bold]Results[/] · {escape(run.run_id)}")
    if models and headline_rows(scores, models):
        table = summary_table(scores, models)
        with_ci = Measurement.get(console, console.options.update_width(10_000), table).maximum <= console.width
        console.print(table if with_ci else summary_table(scores, models, with_ci=False))
        console.print(("[dim]value [95% interval]" if with_ci else "[dim]value (intervals: a wider terminal, or report.html)")
                      + "; ↑/↓ higher/lower is better; green: best in the row; "
                      "▲/▼ better/worse than the model before; † significant paired test (95%)[/]")
    v = verdict(scores, models)
    console.print()
    console.print(f"[bold]Verdict[/]  {escape(v.headline)}")
    for line in v.lines()[1:]:
        console.print(f"  {escape(line)}")
    console.print()
    path = run.path
    console.print("[bold]Next[/]")
    console.print(f"  harness gate {escape(str(path))}    [dim]check the configured gates (exit 1 on a failure)[/]")
    report = path / "report.html"
    if report.is_file():
        console.print(f"  open {escape(str(report))}    [dim]the full report (report.md: a PR comment)[/]")
    else:
        console.print(f"  harness report {escape(str(path))}    [dim]write report.md and report.html[/]")
