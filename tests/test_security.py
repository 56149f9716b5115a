"""No code runs from a config or a judge folder: user templates render in Jinja's sandbox, and a
template that tries to escape it is a one-line error naming the file (exit 2), with nothing run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError

# the classic escape: walk from a string to os._wrap_close and call os.system through its globals
ESCAPE = ("{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == '_wrap_close' %}"
          "{{ c.__init__.__globals__['system']('touch MARKER') }}{% endif %}{% endfor %}")


def _escape(marker: Path) -> str:
    return ESCAPE.replace("MARKER", str(marker))


def _hostile_judge(root: Path, marker: Path) -> Path:
    d = root / "evil-judge"
    d.mkdir(parents=True)
    (d / "judge.yaml").write_text("name: evil\nkind: pointwise\nscale: {min: 0, max: 10}\n"
                                  "prompts: {en: prompt.en.j2}\n")
    (d / "prompt.en.j2").write_text("Grade: {{ question }} {{ answer }}\n" + _escape(marker) + "\n")
    return d


def test_unsandboxed_jinja_would_run_the_escape(tmp_path):
    """The attack is real: a plain jinja2.Environment executes it (so the tests below mean something)."""
    import jinja2

    marker = tmp_path / "ran"
    jinja2.Environment().from_string(_escape(marker)).render()
    assert marker.exists()


def test_hostile_judge_template_is_refused_when_loaded(tmp_path):
    from harness.judging import load_judge

    marker = tmp_path / "pwned"
    d = _hostile_judge(tmp_path, marker)
    with pytest.raises(HarnessError) as info:
        load_judge(d)
    msg = str(info.value)
    assert str((d / "prompt.en.j2").resolve()) in msg and "sandbox" in msg and "\n" not in msg
    assert not marker.exists()


def test_hostile_judge_in_a_config_runs_nothing(tmp_path):
    """`harness run` with a judge folder from the config: exit 2, one line naming the file."""
    from fake_judge_server import Action, FakeJudgeServer

    marker = tmp_path / "pwned"
    d = _hostile_judge(tmp_path, marker)
    rows = [{"instruction": "Capital of France?", "input": "", "output": "Paris"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [exact_match]\n")
    (tmp_path / "answers.jsonl").write_text(json.dumps({"instruction": "Capital of France?", "input": "",
                                                        "model_response": "Paris"}) + "\n")
    with FakeJudgeServer(models=["llama3:latest"], responder=lambda *_: Action.json({"score": 5})) as srv:
        (tmp_path / "harness.yaml").write_text(
            "models:\n  mine: {responses: answers.jsonl}\ntasks: [t.yaml]\noutput_dir: out\n"
            f"judge: {{backend: 'ollama:llama3', host: '{srv.url}', judges: ['{d}']}}\n")
        result = CliRunner().invoke(app, ["run", "-c", str(tmp_path / "harness.yaml"), "-q"],
                                    env={"COLUMNS": "300", "NO_COLOR": "1"})
        assert srv.count("/api/chat") == 0
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "prompt.en.j2" in lines[0], result.output
    assert not marker.exists()


def test_hostile_prompt_format_file_is_refused(tmp_path):
    from harness.models.prompts import get_format

    marker = tmp_path / "pwned"
    f = tmp_path / "my.jinja"
    f.write_text("### Instruction:\n{{ instruction }}\n" + _escape(marker) + "\n### Response:\n")
    with pytest.raises(HarnessError) as info:
        get_format(str(f))
    assert str(f) in str(info.value) and "sandbox" in str(info.value)
    assert not marker.exists()


def test_hostile_inline_prompt_format_is_refused(tmp_path):
    from harness.models.prompts import get_format

    marker = tmp_path / "pwned"
    with pytest.raises(HarnessError, match="sandbox"):
        get_format("{{ instruction }}" + _escape(marker))
    assert not marker.exists()


def test_harmless_templates_still_render(tmp_path):
    from harness.models.prompts import get_format

    fmt = get_format("Q: {{ instruction | upper }}{% if input %} ({{ input }}){% endif %}\nA:")
    assert fmt.render("hi", "there") == "Q: HI (there)\nA:"
