"""report.md / report.html / compare from the stored fixture run (tests/fixtures/run_demo)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report import build_view, write_reports
from harness.report.compare import write_comparison
from harness.report.html import environment, script_json
from harness.report.markdown import md_escape
from harness.store import RunDir, open_run

FIXTURE = Path(__file__).parent / "fixtures" / "run_demo"
HOSTILE = ["<script>document.title='pwned'</script>", "<img src=x onerror=\"document.title='pwned'\">"]
CELL_SPLIT = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    run = tmp_path_factory.mktemp("rep") / "run_demo"
    shutil.copytree(FIXTURE, run)
    md, html = write_reports(run)
    return run, md.read_text(encoding="utf-8"), html.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def scores():
    return json.loads((FIXTURE / "scores.json").read_text(encoding="utf-8"))


def md_tables(md: str) -> list[list[list[str]]]:
    """Every GFM table as a list of rows of cells (header first, separator dropped)."""
    tables, cur = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in CELL_SPLIT.split(line.strip())[1:-1]]
            if cur is None:
                cur = [cells]
            else:
                cur.append(cells)
        elif cur is not None:
            tables.append(cur)
            cur = None
    if cur is not None:
        tables.append(cur)
    return tables


def section(md: str, heading: str) -> str:
    start = md.index(f"\n{heading}\n")
    nxt = md.find("\n## ", start + len(heading) + 2)
    return md[start: nxt if nxt > 0 else None]


def first_float(cell: str) -> float:
    return float(re.search(r"[-+]?\d+\.\d+", cell).group())


# ------------------------------------------------------------------------------ Markdown
def test_markdown_tables_are_valid_gfm(rendered):
    _, md, _ = rendered
    tables = md_tables(md)
    assert len(tables) >= 10
    for t in tables:
        width = len(t[0])
        assert t[1] and all(re.fullmatch(r":?-{3,}:?", c) for c in t[1]), f"no separator row under {t[0]}"
        for row in t:
            assert len(row) == width, f"row {row} has {len(row)} cells, header has {width}"
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<table>") == len(tables)


def test_summary_numbers_match_scores_json(rendered, scores):
    _, md, _ = rendered
    t = md_tables(section(md, "## Summary"))[0]
    header, body = t[0], t[2:]
    models = scores["models"]
    assert header[1:4] == models
    groups = scores["groups"]
    assert header[-1].startswith("n")  # every aggregate shows how many items it rests on
    header = header[:-1]
    checked = thin = 0
    families = []
    for row in body:
        if row[0].startswith("**") and not any(row[1:]):  # a family's header row
            families.append(row[0].strip("*"))
            continue
        label = re.sub(r"\\(.)", r"\1", row[0]).rsplit(" ", 1)[0]
        group, metric = label.split(" · ") if " · " in label else ("all", label)
        if any(groups[group]["models"][m][metric]["n"] < 10 for m in models):
            thin += 1
            for j, m in enumerate(models):
                assert row[1 + j].startswith("insufficient (n=") and "**" not in row[1 + j], row
            assert all(c == "–" for c in row[4:-1]), row
            continue
        for j, m in enumerate(models):
            mv = groups[group]["models"][m][metric]
            assert str(mv["n"]) in row[-1], (label, m, row[-1])
            dec = len(re.search(r"\d+\.(\d+)", row[1 + j]).group(1))
            assert first_float(row[1 + j]) == pytest.approx(mv["value"], abs=0.51 * 10 ** -dec), (label, m)
            if mv["ci"]:
                lo, hi = map(float, re.search(r"\[([-\d.]+), ([-\d.]+)\]", row[1 + j]).groups())
                assert lo == pytest.approx(mv["ci"][0], abs=0.51 * 10 ** -dec)
                assert hi == pytest.approx(mv["ci"][1], abs=0.51 * 10 ** -dec)
            checked += 1
        # best value per row is bold, respecting higher_is_better
        vals = {m: groups[group]["models"][m][metric]["value"] for m in models}
        hib = groups[group]["models"][models[0]][metric]["higher_is_better"]
        best = (max if hib else min)(vals.values())
        for j, m in enumerate(models):
            assert row[1 + j].startswith("**") == (vals[m] == best), (label, m, row)
        # delta columns: value and marker follow the stored paired test
        for k, col in enumerate(header[4:]):
            a, b = [x.strip() for x in col.split("−")]
            cell = row[4 + k]
            tests = [p for p in groups[group]["paired"] if p["metric"] == metric and p["a"] == a and p["b"] == b]
            if tests:
                assert first_float(cell) == pytest.approx(tests[0]["diff"], abs=0.51 * 10 ** -dec)
                assert ("†" in cell) == tests[0]["significant"], (label, col, cell)
                if tests[0]["significant"]:
                    better = (tests[0]["diff"] > 0) == hib
                    assert ("▲" if better else "▼") in cell
            else:
                assert first_float(cell) == pytest.approx(vals[a] - vals[b], abs=0.51 * 10 ** -dec)
                assert "†" not in cell
    assert checked >= 3 * 7 and thin == 2  # json_valid / field_f1 rest on 8 items: below the default 10
    assert families == ["Quality", "Structure and JSON", "Perplexity", "Benchmarks", "Judge"]
    # ref_ppl is lower-is-better: dpo (lowest) is the bold one, and the drop counts as better (▲)
    ppl = next(r for r in body if r[0].startswith("ref\\_ppl"))
    assert ppl[3].startswith("**") and "▲†" in ppl[5]


def test_markdown_sections_and_warnings(rendered):
    _, md, _ = rendered
    for h in ("## Summary", "## Tasks", "### demo-ko", "## Benchmarks", "## Judge", "### Pairwise: pairwise-helpful",
              "## Training", "## Samples with the largest rougeL difference (dpo − base)"):
        assert f"\n{h}" in md, h
    assert "WARNING:** Models used different prompt templates" in md
    assert "WARNING:** The judge is a small local model (hf:Qwen/Qwen2.5-0.5B-Instruct)" in md
    assert "mmlu-mini · acc ↑ | 0.550 ± 0.114 [0.300, 0.750]" in md
    assert "Position-swap consistency" in md and "Length bias" in md
    assert "learning\\_rate | 0.0002" in md and "beta | 0.1" in md
    assert "물은 섭씨 100도에서 끓습니다." in md or "이미지 태그" in md
    # five samples, largest difference first
    diffs = [float(x) for x in re.findall(r"^### \d\. .* \(Δ ([-+]\d\.\d+)\)$", md, re.MULTILINE)]
    assert len(diffs) == 5 and diffs == sorted(diffs, key=abs, reverse=True)


def test_markdown_escapes_hostile_text(rendered):
    _, md, _ = rendered
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in md
    assert "&lt;img src=x onerror=\"document.title='pwned'\"&gt;" in md
    assert md_escape("a | b\nc <b>") == "a \\| b<br>c &lt;b&gt;"
    assert "[link](javascript" not in md


# ------------------------------------------------------------------------------ HTML
def test_html_is_self_contained_and_korean_ready(rendered):
    _, _, html = rendered
    assert '<meta charset="utf-8">' in html
    for font in ('"Apple SD Gothic Neo"', '"Malgun Gothic"', '"Noto Sans CJK KR"', '"Noto Sans KR"', "sans-serif"):
        assert font in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "대한민국의 수도는 서울입니다." in html
    assert html.count("<svg") >= 9  # 7 summary bars (the 2 insufficient rows get none) + 2 loss curves
    assert "Models used different prompt templates" in html and "small local model" in html
    assert environment().autoescape is True


def test_html_escapes_hostile_text(rendered):
    _, _, html = rendered
    for h in HOSTILE:
        assert h not in html
    assert "<img" not in html.lower()
    assert html.lower().count("<script") == 3  # the two JSON blocks and the browser script
    # judge rationale rendered by the template is escaped; sample data is \u-escaped JSON
    m = re.search(r'<script type="application/json" id="sample-data">(.*?)</script>', html, re.DOTALL)
    assert "<" not in m.group(1) and ">" not in m.group(1)
    data = json.loads(m.group(1))
    texts = json.dumps(data, ensure_ascii=False)
    assert all(json.dumps(h, ensure_ascii=False)[1:-1] in texts for h in HOSTILE)  # round-trips verbatim
    item = next(it for it in data["items"] if it["id"] == "demo-en-005")
    assert item["input"] == HOSTILE[0]
    assert item["answers"]["base"]["judge"]["reference-0-100"]["rationale"].startswith("The answer repeats")
    assert len(data["items"]) == 32 and data["models"] == ["base", "sft", "dpo"]
    assert "textContent" in html
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", html)


def test_script_json_cannot_close_the_script_tag():
    out = str(script_json({"x": "</script><!-- & \u2028"}))
    assert "</" not in out and "<!--" not in out and "&" not in out
    assert json.loads(out) == {"x": "</script><!-- & \u2028"}


def test_html_tables_and_markers(rendered, scores):
    _, _, html = rendered
    row = re.search(r'<tr data-metric="all\.rougeL">(.*?)</tr>', html, re.DOTALL).group(1)
    assert 'class="num val best" data-model="dpo"' in row
    assert row.count(" best") == 1
    sig = {(p["a"], p["b"]) for p in scores["groups"]["all"]["paired"] if p["metric"] == "rougeL" and p["significant"]}
    assert row.count("▲†") == len(sig)


def test_report_requires_a_run_dir(tmp_path):
    with pytest.raises(HarnessError, match=r"not a run directory \(no scores\.json\).*harness run"):
        write_reports(tmp_path)


def test_reports_do_not_import_heavy_libraries(tmp_path):
    run = tmp_path / "r"
    shutil.copytree(FIXTURE, run)
    code = (
        "import sys; from harness.report import write_reports; from harness.report.compare import write_comparison;"
        f"write_reports({str(run)!r}); "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'lm_eval') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_view_handles_list_models_and_missing_sections(make_run):
    run = make_run("mini", {"schema": 1, "models": ["a"], "groups": {
        "t": {"kind": "task", "models": {"a": {"em": {"value": None, "ci": None, "n": 0, "missing": 3}}}, "paired": []}}},
        run_info={"run_id": "mini", "models": [{"name": "a", "template_hash": "x"}]})
    md, html = write_reports(run.path)
    text = md.read_text(encoding="utf-8")
    # one task and no pooled group: its rows are the summary (no Tasks section repeats them)
    assert "| t · em ↑ | – | 0 (3 missing) |" in text and "## Tasks" not in text and "WARNING" not in text
    assert "<title>harness report · mini</title>" in html.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ compare
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    a, b = root / "A", root / "B"
    shutil.copytree(FIXTURE, a)
    shutil.copytree(FIXTURE, b)
    rb = RunDir(b)
    rows = rb.read_jsonl("samples/dpo/demo-en.jsonl")
    before = [r["metrics"]["rougeL"] for r in rows]
    for r in rows:
        r["metrics"]["rougeL"] = round(r["metrics"]["rougeL"] * 0.5, 4)
    rb.write_jsonl("samples/dpo/demo-en.jsonl", rows)
    s = rb.scores()
    s["run_id"] = "20261127-090000-ffee00"
    s["groups"]["demo-en"]["models"]["dpo"]["rougeL"]["value"] *= 0.5
    rb.write_json("scores.json", s)
    expected = sum(round(x * 0.5, 4) - x for x in before) / len(before)
    md, html = write_comparison(a, b, root / "out")
    return md.read_text(encoding="utf-8"), html.read_text(encoding="utf-8"), expected


def test_compare_paired_changes(two_runs):
    pytest.importorskip("numpy")
    md, _, expected = two_runs
    overview = md_tables(section(md, "## Change B − A"))[0]
    assert overview[0] == ["metric", "base", "sft", "dpo"]
    row = next(r for r in overview if r[0].startswith("demo-en · rougeL"))
    assert first_float(row[3]) == pytest.approx(expected, abs=0.0006)
    assert "▼†" in row[3]
    assert "†" not in row[1] and "†" not in row[2]
    unchanged = next(r for r in overview if r[0].startswith("demo-ko · chrf"))
    assert all(first_float(c) == 0 and "†" not in c for c in unchanged[1:])
    for t in md_tables(md):
        assert all(len(r) == len(t[0]) for r in t)


def test_compare_html_and_md_escape_samples(two_runs):
    md, html, _ = two_runs
    assert "demo-en-005" in md  # the hostile sample changed most for dpo
    for h in HOSTILE:
        assert h not in md and h not in html
    assert "&lt;script&gt;document.title" in html and "<script" not in html.lower()
    assert '<meta charset="utf-8">' in html and "▼†" in html


def test_compare_errors(tmp_path, make_run):
    with pytest.raises(HarnessError, match="both runs"):
        write_comparison(FIXTURE, FIXTURE, tmp_path / "o")
    other = make_run("other", {"models": ["x"], "groups": {}})
    with pytest.raises(HarnessError, match="no model name in common"):
        write_comparison(FIXTURE, other.path, tmp_path / "o")


# ------------------------------------------------------------------------------ browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,2000"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_chromium_renders_without_running_sample_text(rendered, tmp_path):
    run, _, _ = rendered
    url = (run / "report.html").as_uri() + "#samples?task=demo-ko&metric=rougeL&a=base&b=dpo"
    dom = subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'ud1'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=90, check=True).stdout
    view = build_view(open_run(run))
    assert f"<title>harness report · {view.run_id}</title>" in dom
    assert "pwned" not in re.search(r"<title>(.*?)</title>", dom).group(1)
    # the browser script ran: demo-ko only (12 items), sorted by |dpo - base| on rougeL, first page of 10
    assert 'data-samples-shown="10"' in dom and "Showing 10 of 12 samples (32 in all)" in dom
    ids = re.findall(r'<article class="sample" data-id="([^"]+)"', dom)
    ko = [it for it in view.items if it["task"] == "demo-ko"]
    want = sorted(ko, key=lambda it: -abs(it["answers"]["dpo"]["metrics"]["rougeL"]
                                          - it["answers"]["base"]["metrics"]["rougeL"]))
    assert ids == [f"demo-ko/{it['id']}" for it in want[:10]]
    # hostile text is in the DOM as text only (searched for, so its card is shown)
    dom = subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'ud3'}", "--dump-dom", url + "&q=onerror"],
                         capture_output=True, text=True, timeout=90, check=True).stdout
    assert re.findall(r'<article class="sample" data-id="([^"]+)"', dom) == ["demo-ko/demo-ko-005"]
    assert "<img" not in dom.lower()
    assert "&lt;img src=x onerror=" in dom

    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'ud2'}", f"--screenshot={png}",
                    (run / "report.html").as_uri()], capture_output=True, timeout=90, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
