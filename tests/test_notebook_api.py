"""The notebook face of harness: `dir(harness)`, open_run, to_pandas in long form, the HTML tables
Jupyter shows for runs and gate reports, `harness --version`, and the CI hooks (`--markdown`,
$GITHUB_OUTPUT, runs under ./reports of the current folder). No model is loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import harness
from harness.cli import app
from harness.errors import HarnessError

FIXTURE = Path(__file__).parent / "fixtures" / "run_demo"


def _invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})


def _gates(tmp_path: Path, *rules: str) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text("gates:\n" + "".join(f"  - {json.dumps(r)}\n" for r in rules))
    return path


# ------------------------------------------------------------------ the public API


def test_dir_lists_the_public_api_and_every_name_resolves():
    public = [n for n in dir(harness) if not n.startswith("_")]
    for name in ("run", "open_run", "gate", "report", "compare", "RunDir", "GateReport", "HarnessError"):
        assert name in public and name in harness.__all__
    assert set(harness.__all__) == set(harness._LAZY) | {"__version__"}
    for name in harness._LAZY:
        assert getattr(harness, name) is not None, name
    assert harness.open_run is __import__("harness.store", fromlist=["open_run"]).open_run


def test_import_harness_stays_cheap():
    code = ("import sys, harness; dir(harness); "
            "print([m for m in ('torch', 'pandas', 'pydantic', 'rich', 'harness.api') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_version_flag():
    result = _invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"harness {harness.__version__}"


# ------------------------------------------------------------------ open_run and to_pandas


def test_to_pandas_is_long_form_and_matches_scores_json():
    run = harness.open_run(FIXTURE)
    df = run.to_pandas()
    assert list(df.columns[:8]) == ["model", "group", "metric", "value", "lo", "hi", "n", "missing"]
    doc = json.loads((FIXTURE / "scores.json").read_text())
    expected = sum(len(ms) for g in doc["groups"].values() for ms in g["models"].values())
    assert len(df) == expected
    row = df[(df.model == "sft") & (df.group == "all") & (df.metric == "rougeL")].iloc[0]
    mv = doc["groups"]["all"]["models"]["sft"]["rougeL"]
    assert (row.value, row.lo, row.hi, row.n, row.missing) == (mv["value"], *mv["ci"], mv["n"], mv["missing"])
    assert row.kind == "task" and bool(row.higher_is_better) is True
    # the long form pivots into the wide table a notebook wants
    wide = df[df.group == "all"].pivot(index="metric", columns="model", values="value")
    assert wide.loc["rougeL", "sft"] == mv["value"]


def test_to_pandas_without_pandas_is_one_line_with_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` meets when it is absent
    with pytest.raises(HarnessError) as err:
        harness.open_run(FIXTURE).to_pandas()
    assert "needs pandas" in str(err.value) and "pip install pandas" in str(err.value).lower()


def test_open_run_says_what_is_wrong(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        harness.open_run(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(HarnessError, match="a file"):
        harness.open_run(tmp_path / "f.txt")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "run.json").write_text("{}")
    with pytest.raises(HarnessError, match="not a finished run"):
        harness.open_run(tmp_path / "half")


# ------------------------------------------------------------------ what Jupyter shows


def test_run_repr_and_html_table():
    run = harness.open_run(FIXTURE)
    assert repr(run) == f"RunDir({str(FIXTURE)!r}, models=['base', 'sft', 'dpo'], groups=8)"
    page = run._repr_html_()
    assert page.count("<tr>") >= 5 and "<th>base</th><th>sft</th><th>dpo</th>" in page
    doc = json.loads((FIXTURE / "scores.json").read_text())
    sft = doc["groups"]["all"]["models"]["sft"]["rougeL"]
    assert f"{sft['value']:.3f} <small>[{sft['ci'][0]:.3f}, {sft['ci'][1]:.3f}]</small>" in page
    # the pooled group stands for its tasks; benchmarks and judges get their own rows
    assert "<td>demo-en</td>" not in page
    for group in ("all", "mmlu-mini", "kmmlu-mini", "judge"):
        assert f"<td>{group}</td>" in page
    assert "rougeL ↑" in page and "chrf ↑" in page and "ref_ppl" not in page  # headline metrics only


def test_an_unfinished_run_still_prints(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    run = harness.RunDir(tmp_path)
    assert repr(run) == f"RunDir({str(tmp_path)!r})"
    assert "not a finished run" in run._repr_html_()


def test_gate_report_repr_and_html(tmp_path):
    from harness.api import gate

    report = gate(FIXTURE, config=_gates(tmp_path, "sft.rougeL > base.rougeL", "base.rougeL >= 0.9"))
    assert repr(report) == f"GateReport(run {report.run_id!r}: 1/2 passed; failed: base.rougeL >= 0.9)"
    page = report._repr_html_()
    assert "Gates FAILED" in page and "1/2 rules passed" in page
    assert page.count("<tr>") == 3 and page.index(">PASS<") < page.index(">FAIL<")
    assert "<code>base.rougeL &gt;= 0.9</code>" in page


# ------------------------------------------------------------------ CI hooks


def test_gate_markdown_file(tmp_path):
    out = tmp_path / "md" / "gate.md"
    result = _invoke("gate", str(FIXTURE), "--config", str(_gates(tmp_path, "sft.rougeL > base.rougeL")),
                     "--markdown", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("### ✅ Gates passed: 1/1 rules passed") and "| ✅ | `sft.rougeL > base.rougeL` |" in text


def _responses_project(root: Path) -> Path:
    rows = [{"instruction": "Give the antonym.", "input": "hot", "output": "cold"},
            {"instruction": "Capital of France?", "input": "", "output": "Paris"}]
    root.mkdir(parents=True, exist_ok=True)
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [exact_match, length]\n")
    (root / "answers.jsonl").write_text("".join(
        json.dumps({"instruction": r["instruction"], "input": r["input"], "model_response": r["output"]}) + "\n"
        for r in rows))
    cfg = root / "harness.yaml"
    cfg.write_text("models:\n  mine: {responses: answers.jsonl}\ntasks: [t.yaml]\nbootstrap_resamples: 100\n"
                   "coverage: {min_n: 1}\ngates: ['mine.t.exact_match >= 0.5']\n")
    return cfg


def test_run_without_output_dir_lands_in_reports_of_the_current_folder_and_in_github_output(tmp_path, monkeypatch):
    cfg = _responses_project(tmp_path / "project")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    gh_out = tmp_path / "github_output"
    gh_out.write_text("earlier=1\n")
    md = work / "gate.md"
    result = _invoke("run", "-c", str(cfg), "-q", "--gate", "--markdown", str(md), env={"GITHUB_OUTPUT": str(gh_out)})
    assert result.exit_code == 0, result.output
    (run,) = (work / "reports").iterdir()
    assert not (tmp_path / "project" / "reports").exists()
    lines = gh_out.read_text().splitlines()
    assert lines == ["earlier=1", f"run_dir={run.resolve()}", f"report={(run / 'report.html').resolve()}"]
    assert (run / "scores.json").is_file() and (run / "report.html").is_file()
    assert "Gates passed: 1/1" in md.read_text()


def test_output_dir_in_the_config_is_relative_to_the_config(tmp_path, monkeypatch):
    cfg = _responses_project(tmp_path / "project")
    cfg.write_text(cfg.read_text() + "output_dir: out\n")
    monkeypatch.chdir(tmp_path)
    assert _invoke("run", "-c", str(cfg), "-q").exit_code == 0
    assert len(list((tmp_path / "project" / "out").iterdir())) == 1 and not (tmp_path / "reports").exists()


def test_the_built_in_demo_config_has_no_output_dir_and_finds_its_files(tmp_path, monkeypatch):
    from harness.api import DEMO_CONFIG, load_config
    from harness.baseline import resolve_baseline_path
    from harness.judging.definition import available_judges
    from harness.tasks import load_tasks

    monkeypatch.chdir(tmp_path)
    cfg = load_config(DEMO_CONFIG)
    assert cfg.output_dir is None and cfg.output_root() == tmp_path.resolve() / "reports"
    assert [t.name for t in load_tasks(cfg.tasks, [Path(cfg.base_dir) / "tasks"])] == ["demo-en", "demo-ko", "demo-json", "demo-pref"]
    assert resolve_baseline_path("demo") == DEMO_CONFIG.parent / "baselines" / "demo.json"
    assert set(cfg.judge.judges) <= set(available_judges())
    # a ./baselines/demo.json of the user's own comes first
    shutil.copy(DEMO_CONFIG.parent / "baselines" / "demo.json", tmp_path / "mine.json")
    (tmp_path / "baselines").mkdir()
    shutil.move(tmp_path / "mine.json", tmp_path / "baselines" / "demo.json")
    assert resolve_baseline_path("demo") == tmp_path / "baselines" / "demo.json"
