"""The answer at a glance: the terminal summary (`harness run` / `harness show`), the verdict-first
report.md and report.html, on a real small run (three responses models through `harness run`) and
on the stored fixture run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness import api
from harness.cli import app
from harness.report import build_view
from harness.report.terminal import LOG_WIDTH
from harness.report.verdict import verdict
from harness.store import open_run

FIXTURE = Path(__file__).parent / "fixtures" / "run_demo"
DEMO_DATA = Path(__file__).parent.parent / "harness" / "demo" / "data" / "test.jsonl"
HEAVY = ("torch", "transformers", "peft", "trl", "lm_eval")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900"]


def _project(root: Path) -> Path:
    """English demo items and three answer files: base answers nothing useful, sft the reference,
    dpo the reference except every third item (a regression the sample filter must find)."""
    rows = [json.loads(x) for x in DEMO_DATA.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = [r for r in rows if r.get("lang") == "en" and r.get("format") == "text"][:24]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "qa.yaml").write_text("name: qa\ndata: data.jsonl\nfields: {instruction: instruction, input: input, "
                                  "reference: output}\nmetrics: [rouge, exact_match, length]\n", encoding="utf-8")
    answers = {"base": lambda i, r: "I am not sure about that.", "sft": lambda i, r: r["output"],
               "dpo": lambda i, r: "I am not sure about that." if i % 3 == 0 else r["output"]}
    for name, answer in answers.items():
        (root / f"{name}.jsonl").write_text("".join(
            json.dumps({"instruction": r["instruction"], "input": r["input"], "model_response": answer(i, r)}) + "\n"
            for i, r in enumerate(rows)), encoding="utf-8")
    cfg = root / "harness.yaml"
    cfg.write_text("models:\n" + "".join(f"  {m}: {{responses: {m}.jsonl}}\n" for m in answers)
                   + "tasks: [qa.yaml]\noutput_dir: out\nbootstrap_resamples: 200\n", encoding="utf-8")
    return cfg


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("glance")
    cfg = _project(root)
    result = CliRunner().invoke(app, ["run", "-c", str(cfg), "-q"], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, (result.output, result.exception)
    run = next((root / "out").iterdir())
    return run, result.output


def _plain(text: str) -> list[str]:
    return [x.rstrip() for x in text.splitlines()]


# ------------------------------------------------------------------------------ terminal
def test_run_ends_with_the_summary_then_the_run_lines(real_run):
    run, out = real_run
    lines = _plain(out)
    assert "\x1b[" not in out  # not a terminal: plain text
    assert lines[-2:] == [f"run directory: {run}", f"report: {run / 'report.html'}"]
    v = verdict(json.loads((run / "scores.json").read_text()))
    assert v.best == ["sft"]
    text = "\n".join(lines)
    for line in v.lines():  # every verdict line, word for word
        assert line in text, line
    assert f"harness gate {run}" in text and f"open {run / 'report.html'}" in text
    # the headline table: one row per metric with a better direction, deltas vs the model before
    header = next(x for x in lines if x.lstrip().startswith("metric"))
    assert re.search(r"metric\s+base\s+sft\s+dpo\s+sft − base\s+dpo − sft$", header), header
    row = next(x for x in lines if x.lstrip().startswith("qa · exact_match ↑"))
    # 0/1 metrics at n = 24: Wilson intervals, never a point
    assert re.search(r"0\.000 \[0\.000, 0\.138\]\s+1\.000 \[0\.862, 1\.000\]\s+0\.6\d\d \[[\d.]+, [\d.]+\]"
                     r"\s+\+1\.000 ▲†\s+-0\.3\d\d ▼†$", row), row
    # no better direction (lengths) or one value for all (empty): in the report only
    assert not any(re.match(r"\s*qa · (length_|empty)", x) for x in lines)
    table = lines[lines.index(header):next(i for i, x in enumerate(lines) if x.startswith("value [95% interval]"))]
    assert len(table) == 2 + 4 and max(len(x) for x in table) <= LOG_WIDTH  # a redirected log: a sane fixed width


def test_show_prints_the_same_summary(real_run):
    run, out = real_run
    result = CliRunner().invoke(app, ["show", str(run)], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "Verdict  Best: sft." in result.output
    assert result.output.strip() in out  # run printed exactly this before its run-directory lines


def test_show_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["show", str(tmp_path)])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "scores.json" in lines[0], result.output


def test_show_does_not_import_heavy_libraries(tmp_path):
    run = tmp_path / "r"
    shutil.copytree(FIXTURE, run)
    code = ("import sys; from harness.cli import app\n"
            f"try:\n    app(['show', {str(run)!r}])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Best: dpo." in proc.stdout and "pairwise judge pairwise-helpful" in proc.stdout


# ------------------------------------------------------------------------------ report.md
def test_markdown_reads_as_a_pull_request_comment(real_run):
    run, _ = real_run
    md = (run / "report.md").read_text(encoding="utf-8")
    view = build_view(open_run(run))
    assert md.index("## Verdict") < md.index("## Summary") < md.index("<details>")
    assert f"**{view.verdict.headline}**" in md
    # everything after the summary is folded: each <details> closes, and no heading sits outside one
    after = md[md.index("<details>"):]
    assert after.count("<details>") == after.count("</details>") >= 3
    depth = 0
    for line in after.splitlines():
        depth += line.count("<details>") - line.count("</details>")
        assert depth >= 0
        if line.startswith("#"):
            assert depth > 0, line
    for summary in re.findall(r"<details><summary>(.*?)</summary>\n\n", md):
        assert summary  # a blank line after the summary line, so GitHub renders the Markdown inside
    # lengths have no better direction: folded under the table, not in it
    summary = md[md.index("## Summary"):md.index("<details>")]
    table = summary.split("<details>")[0]
    assert "length\\_words" not in table
    # one task, no pooled group: the summary is that task's table, not repeated under Tasks
    assert "## Tasks" not in md and "| qa · rougeL ↑ |" in table


# ------------------------------------------------------------------------------ report.html
def _probe(html_path: Path, out_dir: Path) -> Path:
    """A copy of the page with a script that writes layout facts onto <body> for --dump-dom."""
    probe = ("<script>(function(){var b=document.body,v=document.getElementById('verdict');"
             "var t=document.querySelector('table');"
             "b.setAttribute('data-height',String(document.documentElement.scrollHeight));"
             "if(v){var r=v.getBoundingClientRect();b.setAttribute('data-verdict-top',String(r.top+scrollY));"
             "b.setAttribute('data-verdict-bottom',String(r.bottom+scrollY));}"
             "if(v&&t){b.setAttribute('data-verdict-first',String(!!(v.compareDocumentPosition(t)&4)));}"
             "})();</script></body>")
    page = out_dir / "probe.html"
    page.write_text(html_path.read_text(encoding="utf-8").replace("</body>", probe), encoding="utf-8")
    return page


def _dom(url: str) -> str:
    with tempfile.TemporaryDirectory() as ud:
        return subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={ud}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=90, check=True).stdout


def test_html_verdict_block_and_grouped_tables(real_run):
    run, _ = real_run
    html = (run / "report.html").read_text(encoding="utf-8")
    view = build_view(open_run(run))
    assert html.index('id="verdict"') < html.index("<table")
    assert f'<p class="headline">{view.verdict.headline}</p>' in html
    assert 'class="pair worse"' in html  # dpo vs sft: worse, coloured as such
    assert '<section id="tasks">' not in html and 'data-metric="qa.rougeL"' in html  # the summary has the task
    # neutral rows folded into <details>, and no bar chart for them
    folded = re.search(r'<details class="folded">(.*?)</details>', html, re.DOTALL).group(1)
    assert 'data-metric="all.length_words"' in folded or 'data-metric="qa.length_words"' in folded
    assert "length_words" not in " ".join(re.findall(r'aria-label="([^"]*)"', html))
    data = json.loads(re.search(r'<script type="application/json" id="sample-data">(.*?)</script>',
                                html, re.DOTALL).group(1))
    assert data["key_metrics"]["qa"][0] == data["default_metric"] == "rouge1" and len(data["key_metrics"]["qa"]) <= 4
    assert "length_words" not in data["key_metrics"]["qa"]
    assert data["directions"]["length_words"] is None and data["directions"]["exact_match"] is True


def test_training_manifests_are_tables_and_dpo_rewards_are_plotted(tmp_path):
    run = tmp_path / "r"
    shutil.copytree(FIXTURE, run)
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    man = info["models"]["dpo"]["train_manifest"]
    for i, rec in enumerate(man["log"]):
        if "loss" in rec:
            rec.update({"rewards/margins": 0.1 * i, "rewards/accuracies": min(1.0, 0.5 + 0.02 * i)})
    man["data"] = {"train": {"path": "dpo_train.jsonl", "rows": 412}, "eval": {"path": "dpo_val.jsonl", "rows": 40}}
    man["versions"] = {"trl": "1.16.0", "peft": "0.21.2"}
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    md_path, html_path = api.report(run)
    html, md = html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
    for title in ("dpo: loss", "dpo: DPO rewards", "dpo: reward accuracy", "sft: loss"):
        assert f'aria-label="{title}"' in html, title
    assert 'aria-label="sft: DPO rewards"' not in html  # nothing logged: no empty chart
    training = html[html.index('<section id="training">'):html.index('<section id="models">')]
    assert "data.train.rows</th><td class=\"mono\">412" in training and "versions.trl" in training
    assert "{&#34;" not in training and '{"' not in training  # no raw JSON
    assert "rewards/margins 0.000 →" in md and "| data.train.path | dpo\\_train.jsonl |" in md


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_chromium_first_screen_shows_the_verdict(real_run, tmp_path):
    run, _ = real_run
    dom = _dom(_probe(run / "report.html", tmp_path).as_uri())
    body = re.search(r"<body[^>]*>", dom).group(0)
    facts = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert facts["verdict-first"] == "true", body  # before any table in the page
    assert 0 < float(facts["verdict-top"]) and float(facts["verdict-bottom"]) < 900, body  # on the first screen
    assert "Best: sft." in dom
    png = tmp_path / "first-screen.png"
    with tempfile.TemporaryDirectory() as ud:
        subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={ud}", f"--screenshot={png}",
                        (run / "report.html").as_uri()], capture_output=True, timeout=90, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_chromium_regressions_only_filter(real_run):
    run, _ = real_run
    view = build_view(open_run(run))
    want = [it for it in view.items if it["answers"]["dpo"]["metrics"]["exact_match"]
            < it["answers"]["sft"]["metrics"]["exact_match"]]
    assert want
    dom = _dom((run / "report.html").as_uri() + "#samples?metric=exact_match&a=sft&b=dpo&reg=1")
    ids = re.findall(r'<article class="sample" data-id="([^"]+)"', dom)
    assert sorted(ids) == sorted(f"qa/{it['id']}" for it in want)[:10]
    assert re.search(r'id="f-reg"[^>]*checked|checked[^>]*id="f-reg"', dom) or "only where dpo is worse than sft" in dom
    # a card shows the key metrics; every metric is one click away
    card = dom[dom.index('<article class="sample"'):]
    card = card[:card.index("</article>")]
    first = re.search(r'<div class="mets">(.*?)</div>', card).group(1)
    assert "rougeL" in first and "length_words" not in first
    assert 'class="allm"' in card


def test_a_narrow_terminal_drops_the_intervals_not_the_values(tmp_path):
    import io

    from rich.console import Console

    from harness.report.terminal import print_summary

    out = {}
    for width in (160, 90):
        buf = io.StringIO()
        print_summary(FIXTURE, Console(file=buf, width=width, no_color=True, highlight=False, soft_wrap=True))
        out[width] = buf.getvalue()
    assert "0.219 [0.157, 0.281]" in out[160] and "value [95% interval]" in out[160]
    rouge = next(x for x in out[90].splitlines() if x.startswith("rougeL ↑"))
    assert re.fullmatch(r"rougeL ↑\s+0\.219\s+0\.607\s+0\.719\s+\+0\.388 ▲†\s+\+0\.112 ▲†", rouge.rstrip()), rouge
    assert "intervals: a wider terminal, or report.html" in out[90]
    assert all(len(x) <= 90 for x in out[90].splitlines()[:14])
