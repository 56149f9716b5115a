"""The one progress display: plain lines (flushed as they happen) when the output is not a
terminal, the mode choice, benchmark progress per request batch, and a real `harness run` with
its output in a pipe: phase lines in order and none of the libraries' chatter."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.progress import Progress, display_mode


class _Log(io.StringIO):
    """A stream that records what was on it at each flush (a file someone is tailing)."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        self.flushed.append(self.getvalue())


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_plain_mode_writes_phase_lines_at_start_and_end_and_flushes_each():
    log = _Log()
    with Progress(mode="plain", stream=log, interval=3600) as p:
        p.log("[bold]run directory:[/] /tmp/x")
        with p.bar("generate base · demo", 16) as update:
            for i in range(1, 17):
                update(i)  # within the interval: no line per update
        p.log("between phases")
    lines = _lines(log.getvalue())
    assert lines[0] == "[harness] run directory: /tmp/x"  # markup stripped
    assert lines[1] == "[harness] generate base · demo: 0/16"
    assert re.fullmatch(r"\[harness\] generate base · demo: 16/16 \(\d+\.\d s\)", lines[2]), lines[2]
    assert lines[3] == "[harness] between phases"
    assert len(lines) == 4
    # every line reached the stream's flush as soon as it was written
    assert [len(_lines(f)) for f in log.flushed] == [1, 2, 3, 4]


def test_plain_mode_prints_progress_lines_for_long_phases_with_time_left():
    log = _Log()
    with Progress(mode="plain", stream=log, interval=0) as p:
        with p.bar("benchmark sft · mmlu-mini (requests)", None) as update:
            update(0, 120)
            update(60, 120)
            update(120, 120, "benchmark sft · mmlu-mini (done)")  # no tick: the end line follows
    lines = _lines(log.getvalue())
    assert lines[0] == "[harness] benchmark sft · mmlu-mini (requests): starting"
    assert any(re.fullmatch(r"\[harness\] .*: 60/120 \(\d+\.\d s, ~\d+\.\d s left\)", ln) for ln in lines), lines
    assert re.fullmatch(r"\[harness\] benchmark sft · mmlu-mini \(done\): 120/120 \(\d+\.\d s\)", lines[-1])
    assert sum("120/120" in ln for ln in lines) == 1  # the end line, not a tick before it


def test_a_failed_phase_says_stopped_and_quiet_prints_nothing():
    log = _Log()
    with pytest.raises(RuntimeError), Progress(mode="plain", stream=log) as p, p.bar("judge · t", 4) as update:
        update(1)
        raise RuntimeError("boom")
    assert re.search(r"judge · t: 1/4 \(\d+\.\d s, stopped\)", log.getvalue())
    quiet = _Log()
    with Progress(quiet=True, stream=quiet) as p, p.bar("x", 2) as update:
        p.log("hello")
        update(2)
    assert quiet.getvalue() == ""


def test_display_mode(monkeypatch):
    monkeypatch.delenv("HARNESS_PROGRESS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert display_mode(io.StringIO()) == "plain"  # a file or a pipe

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.setenv("TERM", "xterm")
    assert display_mode(Tty()) == "live"
    monkeypatch.setenv("CI", "true")
    assert display_mode(Tty()) == "plain"
    monkeypatch.setenv("HARNESS_PROGRESS", "live")
    assert display_mode(io.StringIO()) == "live"
    assert Progress(quiet=True).mode == "off"


def test_live_mode_draws_rich_bars_with_counts_and_time_remaining():
    out = io.StringIO()
    with Progress(mode="live", stream=out) as p:
        with p.bar("generate base · demo", 4) as update:
            update(2)
        with p.bar("benchmark base · mmlu-mini (requests)", None) as update:
            update(3, 12)
    text = out.getvalue()
    assert "generate base · demo" in text and "4/4" in text and "eta" in text
    assert "12/12" in text  # a bar whose total came later ends full
    assert "[harness]" not in text


def test_engine_lm_reports_requests_as_the_engine_finishes_batches():
    from harness.benchmarks.engine_lm import EngineLM, RequestCounter
    from harness.engine import Generation

    class Req:
        def __init__(self, *args):
            self.args = args

    class Engine:
        def loglikelihood(self, pairs, progress=None):
            for done in (2, 4, len(pairs)):
                progress(min(done, len(pairs)), len(pairs))
            return [(-1.0, True)] * len(pairs)

        def generate(self, prompts, *, fmt=None, stop=(), progress=None, **kw):
            progress(len(prompts), len(prompts))
            return [Generation(text="x", raw="x", n_tokens=1, truncated=False, finish="stop") for _ in prompts]

    seen: list[tuple[int, int]] = []
    counter = RequestCounter(lambda d, n: seen.append((d, n)))
    lm = EngineLM(Engine(), progress=counter, batch_size="auto")
    lm.loglikelihood([Req("q", f" {c}") for c in "ABCDEF"])
    lm.generate_until([Req("p", {"until": ["\n"]}), Req("p2", {"until": ["\n"]})])
    assert seen[0] == (0, 6) and (2, 6) in seen and (4, 6) in seen and (6, 6) in seen
    assert seen[-1] == (8, 8)  # generations add to the total; counts never go back
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # no listener: the engine is called without a progress keyword (engines in tests have none)
    class Bare:
        def loglikelihood(self, pairs):
            return [(-1.0, True)] * len(pairs)

    assert EngineLM(Bare()).loglikelihood([Req("q", " A")]) == [(-1.0, True)]


def test_lm_eval_git_hash_and_env_report_are_never_run(monkeypatch):
    import lm_eval.evaluator as ev

    from harness.benchmarks.bridge import quiet_lm_eval

    original = ev.get_git_commit_hash
    with quiet_lm_eval():
        assert ev.get_git_commit_hash() is None
        info: dict = {}
        ev.add_env_info(info)
        assert "pretty_env_info" not in info and info["lm_eval_version"]
    assert ev.get_git_commit_hash is original


# --------------------------------------------------------------------------- a real run

CHATTER = ("fatal: not a git repository", "Overwriting default num_fewshot", "is not of type `str`",
           "it/s]", "s/it]", "Building contexts", "Generating test split", "Map:", "Loading checkpoint",
           "WARNING", "Warning:")


@pytest.fixture(scope="module", params=["cli", "api"])
def piped_run(request, tiny_models, tmp_path_factory):
    """`harness run` (or ``harness.run()`` from a Python script, as a notebook calls it: progress
    on by default) on tiny models, a generation task and an offline mini benchmark, with its
    output in a pipe, from a folder that is not a git checkout."""
    root = tmp_path_factory.mktemp("piped")
    (root / "d.jsonl").write_text("".join(json.dumps({"instruction": f"Say {w}.", "input": "", "output": w}) + "\n"
                                          for w in ("yes", "no", "maybe")), encoding="utf-8")
    (root / "t.yaml").write_text("name: t\ndata: d.jsonl\nmetrics: [exact_match]\n", encoding="utf-8")
    t = tiny_models
    (root / "harness.yaml").write_text(
        f"models:\n  base: {{path: {t['base']}}}\n  sft: {{adapter: {t['lora_a']}, base: base}}\n"
        "tasks: [t.yaml]\nbenchmarks: [{name: mmlu-mini, limit: 3, num_fewshot: 1, batch_size: 1}]\n"
        "generation: {max_new_tokens: 4}\nbootstrap_resamples: 100\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_PROGRESS", "HARNESS_VERBOSE", "CI",
                                                            "TQDM_DISABLE", "PYTHONUNBUFFERED")}
    env.update(HARNESS_CACHE=str(root / "cache"), PYTHONPATH=str(Path(__file__).parents[1]),
               HARNESS_PROGRESS_INTERVAL="0")
    cmd = [sys.executable, "-m", "harness.cli", "run", "-c", str(root / "harness.yaml"), "--judge", "none",
           "-o", str(root / "out")]
    if request.param == "api":
        cmd = [sys.executable, "-c", "import harness; harness.run('harness.yaml', judge='none', output_dir='out')"]
    proc = subprocess.run(cmd, cwd=root, env=env, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return proc


def test_a_piped_run_shows_phase_lines_in_order(piped_run):
    out = piped_run.stdout
    assert piped_run.returncode == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith("[harness] ")]
    assert lines[0].startswith("[harness] run directory: ")
    order = [next(i for i, ln in enumerate(lines) if ln.startswith(f"[harness] {phase}"))
             for phase in ("generate base, sft · t", "benchmark base · mmlu-mini", "benchmark sft · mmlu-mini",
                           "score")]
    assert order == sorted(order), lines
    # each phase: a start line and an end line with the counts and the time it took
    assert any(re.fullmatch(r"\[harness\] generate base, sft · t, 6 requests in 2 shards: 6/6 \(\d+\.\d s\)", ln)
               for ln in lines), lines
    # the benchmark counted lm-eval's requests (3 questions x 4 choices) as they were scored
    bench = [ln for ln in lines if ln.startswith("[harness] benchmark sft · mmlu-mini")]
    assert re.fullmatch(r".*: 12/12 \(\d+\.\d s\)", bench[-1]), bench
    # batch size 1: one question's 4 answers per forward pass, each reported as it finished
    assert any(re.fullmatch(r".*: [48]/12 \(\d+\.\d s, ~\d+\.\d s left\)", ln) for ln in bench), bench


def test_a_piped_run_has_no_library_chatter(piped_run):
    out = piped_run.stdout
    for text in CHATTER:
        assert text not in out, (text, out)
    assert "\r" not in out and "\x1b[" not in out  # no redrawn bars, no terminal codes in a log


def test_a_run_from_python_quiets_libraries_only_while_it_runs(monkeypatch):
    import warnings

    import transformers.utils.logging as tl

    from harness.progress import libraries_quiet

    monkeypatch.delenv("HARNESS_VERBOSE", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    tl.enable_progress_bar()
    filters = list(warnings.filters)
    with libraries_quiet():
        assert not tl.is_progress_bar_enabled() and os.environ["TQDM_DISABLE"] == "1"
        assert warnings.filters[0][0] == "ignore"
    assert tl.is_progress_bar_enabled() and "TQDM_DISABLE" not in os.environ
    assert warnings.filters == filters
    monkeypatch.setenv("HARNESS_VERBOSE", "1")  # --verbose: nothing is switched off
    with libraries_quiet():
        assert tl.is_progress_bar_enabled()


def test_a_phase_stuck_in_one_long_batch_still_prints_lines():
    import time

    log = _Log()
    with Progress(mode="plain", stream=log, interval=0.4) as p, p.bar("generate base · t", 4) as update:
        update(1)
        time.sleep(2.6)  # no update: one slow batch (a line each 2.5 x 0.4 s)
    ticks = [ln for ln in _lines(log.getvalue()) if re.search(r": 1/4 \(\d+\.\d s, ~", ln)]
    assert len(ticks) >= 2, log.getvalue()
