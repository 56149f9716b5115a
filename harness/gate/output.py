"""Gate outputs: the console table, Markdown (GitHub step summary), JUnit XML, and ``gate_main``
(what ``harness gate`` and ``harness run --gate`` call: 0 when every rule passed, 1 otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

from harness.gate.check import GateReport, check_gates, fmt_number


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
        table.add_row(mark, _esc(label), fmt_number(r.actual), fmt_number(r.threshold), _esc(r.reason))
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
        lines.append(f"| {'✅' if r.passed else '❌'} | {_md(label)} | {fmt_number(r.actual)} | {fmt_number(r.threshold)} "
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
        detail = f"actual={fmt_number(r.actual)} threshold={fmt_number(r.threshold)}: {r.reason}"
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


def gate_main(run_dir: str | Path, config: str | Path | None = None, baseline: str | Path | None = None,
              junit: str | Path | None = None, *, markdown: str | Path | None = None, console=None) -> int:
    """What ``harness gate RUN_DIR [--config F] [--baseline B] [--junit F] [--markdown F]`` does.

    Prints the table, writes JUnit and Markdown files (when asked), appends Markdown to
    $GITHUB_STEP_SUMMARY (when set) and returns 0 when every rule passed, 1 otherwise. Input
    mistakes raise HarnessError (the CLI exits 2).
    """
    report = check_gates(run_dir, config, baseline)
    if console is None:
        from rich.console import Console

        console = Console()
    console.print(format_table(report))
    if junit:
        out = write_junit(report, junit)
        console.print(f"JUnit report: {out}")
    if markdown:
        md = Path(markdown)
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(to_markdown(report), encoding="utf-8")
        console.print(f"Markdown: {md}")
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
