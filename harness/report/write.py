"""``write_reports(run_dir)``: report.md and report.html written into a stored run directory."""

from __future__ import annotations

from pathlib import Path

from harness.report.view import build_view
from harness.store import open_run


def write_reports(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir`` from its stored results."""
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown

    run = open_run(run_dir)
    view = build_view(run)
    md = run.write_text("report.md", render_markdown(view))
    html = run.write_text("report.html", render_html(view))
    return md, html
