"""The blind arena: Bradley-Terry and its intervals, Cohen's kappa, the votes file, the input checks,
and the real Gradio server on 127.0.0.1 driven by gradio_client, through to the report's Arena section."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit
from typer.testing import CliRunner

from harness.arena.agreement import cohen_kappa, human_label, judge_human_agreement
from harness.arena.pool import ArenaPool
from harness.arena.ranking import (
    MIN_ROUNDS,
    Comparison,
    _points,
    bradley_terry,
    comparisons,
    fit_strengths,
    vote_counts,
    win_matrix,
    win_probability,
)
from harness.arena.votes import append_vote, make_vote, read_votes
from harness.cli import app
from harness.errors import HarnessError
from harness.records import Sample, Verdict

MODELS = ["base", "sft", "dpo"]
QUALITY = {"base": "[bad]", "sft": "[ok]", "dpo": "[good]"}
RANK = {"[bad]": 0, "[ok]": 1, "[good]": 2}
JUDGE = "pairwise-helpful"


def V(left, right, choice, item="1", task="t", voter="v"):
    return make_vote(voter=voter, task=task, item=item, left=left, right=right, choice=choice,
                     time="2026-11-29T00:00:00+00:00")


def pts(matrix) -> np.ndarray:
    return np.array(matrix, dtype=float)


# ------------------------------------------------------------------------------ Bradley-Terry


def test_two_models_log_odds_and_ties_as_half_wins():
    # A beat B 3 times out of 4: the MLE of theta_A - theta_B is log(3/1)
    th = fit_strengths(pts([[0, 3], [1, 0]]), prior_games=0)
    assert th[0] - th[1] == pytest.approx(math.log(3), abs=1e-9)
    assert th.sum() == pytest.approx(0, abs=1e-12)  # centred
    # 2 wins + 2 ties = 3 points of 4, the same estimate; 1 win, 2 ties, 1 loss = even
    two_wins_two_ties = [V("A", "B", "left")] * 2 + [V("B", "A", "tie")] * 2
    th = fit_strengths(_points(comparisons(two_wins_two_ties), {"A": 0, "B": 1}), prior_games=0)
    assert th[0] - th[1] == pytest.approx(math.log(3), abs=1e-9)
    even = [V("A", "B", "left"), V("A", "B", "tie"), V("B", "A", "tie"), V("B", "A", "left")]
    th = fit_strengths(_points(comparisons(even), {"A": 0, "B": 1}), prior_games=0)
    assert th[0] - th[1] == pytest.approx(0, abs=1e-9)


def test_three_models_textbook_case_fits_exactly():
    # A beats B 2:1, B beats C 2:1, A beats C 4:1: strengths 4 : 2 : 1 reproduce every pair exactly
    # (P(A>C) = 4/(4+1)), so the MLE is theta = log(4), log(2), log(1) up to a shift.
    th = fit_strengths(pts([[0, 2, 4], [1, 0, 2], [1, 1, 0]]), prior_games=0)
    assert th[0] - th[1] == pytest.approx(math.log(2), abs=1e-9)
    assert th[1] - th[2] == pytest.approx(math.log(2), abs=1e-9)


def test_mle_solves_the_score_equations():
    # irregular data: at the MLE every model's observed points equal its expected points
    p = pts([[0, 5, 1.5, 2], [3, 0, 4, 0.5], [2.5, 1, 0, 3], [1, 2.5, 2, 0]])
    th = fit_strengths(p, prior_games=0)
    games = p + p.T
    expected = (games * expit(th[:, None] - th[None, :])).sum(axis=1)
    np.testing.assert_allclose(expected, p.sum(axis=1), atol=1e-8)


def test_model_with_only_wins_gets_a_finite_rating_from_the_virtual_tie_prior():
    only_wins = pts([[0, 5], [0, 0]])
    with pytest.raises(ValueError, match="does not exist"):
        fit_strengths(only_wins, prior_games=0)
    th = fit_strengths(only_wins, prior_games=1.0)
    # by symmetry theta_A = -theta_B = t, where 5 (1 - s(2t)) + (0.5 - s(t)) = 0 (one virtual tie each)
    t = brentq(lambda t: 5 * (1 - expit(2 * t)) + (0.5 - expit(t)), 0, 20)
    assert th[0] == pytest.approx(t, abs=1e-8) and th[1] == pytest.approx(-t, abs=1e-8)
    # through the ranking: a model that only lost gets the lowest, finite rating and an interval
    votes = [V("A", "B", "left")] * 5 + [V("B", "C", "left")] * 3 + [V("C", "B", "left")] * 2
    ratings = {r.model: r for r in bradley_terry(["A", "B", "C"], comparisons(votes), rounds=500)}
    assert all(math.isfinite(r.rating) and r.ci[0] <= r.rating <= r.ci[1] for r in ratings.values())
    assert ratings["A"].rating > ratings["B"].rating and ratings["A"].rating > ratings["C"].rating
    # more votes move a model further, the prior's pull fades
    more = bradley_terry(["A", "B"], comparisons([V("A", "B", "left")] * 50), rounds=500)
    fewer = bradley_terry(["A", "B"], comparisons([V("A", "B", "left")] * 5), rounds=500)
    assert more[0].rating > fewer[0].rating > 1000


def test_both_bad_is_counted_but_not_a_comparison():
    votes = [V("A", "B", "left"), V("A", "B", "both_bad"), V("B", "A", "both_bad"), V("B", "A", "tie")]
    assert comparisons(votes) == [Comparison("A", "B", 1.0), Comparison("B", "A", 0.5)]
    m = win_matrix(votes, ["A", "B"])
    assert m["A"]["B"] == {"win": 1, "tie": 1, "loss": 0, "both_bad": 2}
    assert m["B"]["A"] == {"win": 0, "tie": 1, "loss": 1, "both_bad": 2}
    c = vote_counts(votes, ["A", "B", "C"])
    assert c["A"] == {"votes": 4, "win": 1, "tie": 1, "loss": 0, "both_bad": 2}
    assert c["C"]["votes"] == 0


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    votes = ([V("x", "y", "left")] * 6 + [V("y", "x", "left")] * 2 + [V("x", "z", "tie")] * 3
             + [V("z", "y", "right")] * 4 + [V("x", "y", "both_bad")])
    comps = comparisons(votes)
    a = bradley_terry(["x", "y", "z"], comps, rounds=MIN_ROUNDS, seed=7)
    b = bradley_terry(["x", "y", "z"], comps, rounds=MIN_ROUNDS, seed=7)
    c = bradley_terry(["x", "y", "z"], comps, rounds=MIN_ROUNDS, seed=8)
    assert a == b and a != c
    assert [r.model for r in a] == ["x", "y", "z"]
    for r in a:
        assert r.ci[0] < r.rating < r.ci[1]
        assert r.ci[1] - r.ci[0] > 50  # 16 votes leave wide intervals
    assert sum(r.theta for r in a) == pytest.approx(0, abs=1e-9)
    assert sum(r.rating for r in a) / 3 == pytest.approx(1000)
    with pytest.raises(ValueError, match="at least 500"):
        bradley_terry(["x", "y", "z"], comps, rounds=100)


def test_model_without_comparisons_is_unrated_and_elo_scale():
    out = bradley_terry(["a", "b", "c"], comparisons([V("a", "b", "left"), V("b", "a", "left")]), rounds=500)
    assert out[-1].model == "c" and out[-1].rating is None and out[-1].ci is None
    assert out[0].rating == pytest.approx(1000) and out[1].rating == pytest.approx(1000)
    assert win_probability(1100, 1000) == pytest.approx(1 / (1 + 10 ** -0.25))
    with pytest.raises(ValueError, match="not in the list"):
        bradley_terry(["a"], comparisons([V("a", "b", "left")]), rounds=500)


# ------------------------------------------------------------------------------ kappa / agreement


def test_cohen_kappa_by_hand():
    human = ["a", "a", "b", "tie", "a", "b", "b", "a"]
    judge = ["a", "b", "b", "tie", "a", "a", "b", "tie"]
    # observed: units 1,3,4,5,7 agree = 5/8; human a4 b3 t1, judge a3 b3 t2:
    # expected = (4*3 + 3*3 + 1*2) / 64 = 23/64; kappa = (5/8 - 23/64) / (1 - 23/64) = 17/41
    want = (Fraction(5, 8) - Fraction(23, 64)) / (1 - Fraction(23, 64))
    assert want == Fraction(17, 41)
    assert cohen_kappa(human, judge) == pytest.approx(float(want), abs=1e-12)
    assert cohen_kappa(human, human) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # p_e = 1: undefined
    assert cohen_kappa([], []) is None
    # chance-level disagreement: perfectly opposite on a balanced set
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)


def _pair_verdict(a, b, item, winner, task="t", judge=JUDGE, error=None):
    return Verdict(id=item, task=task, model=f"{a}_vs_{b}", judge=judge, winner=winner, error=error,
                   meta={"model_a": a, "model_b": b, "consistent": True})


def test_judge_human_agreement_maps_both_orders_to_the_judges_pair():
    verdicts = [_pair_verdict("sft", "base", "1", "sft"), _pair_verdict("sft", "base", "2", "tie"),
                _pair_verdict("sft", "base", "3", "base"), _pair_verdict("sft", "base", "4", None, error="no reply"),
                _pair_verdict("sft", "base", "5", "sft", judge="other")]
    votes = [V("base", "sft", "right", item="1"),       # human: sft   judge: sft  -> agree
             V("sft", "base", "left", item="1", voter="w"),  # sft / sft    -> agree
             V("sft", "base", "both_bad", item="2"),     # tie / tie    -> agree (both bad = tie)
             V("base", "sft", "left", item="3"),         # base / base  -> agree
             V("sft", "base", "left", item="3", voter="w"),  # sft / base -> disagree
             V("sft", "base", "left", item="4"),         # judge missing
             V("sft", "dpo", "left", item="1")]          # pair not judged
    assert human_label(votes[0], "sft", "base") == "a" and human_label(votes[3], "sft", "base") == "b"
    (ag,) = judge_human_agreement(votes, verdicts)  # "other" rated no voted pair: not listed
    assert ag.judge == JUDGE and ag.n == 5 and ag.judge_missing == 1
    assert ag.agree == pytest.approx(4 / 5)
    assert ag.n_without_ties == 4 and ag.agree_without_ties == pytest.approx(3 / 4)
    assert ag.kappa == pytest.approx(cohen_kappa(["a", "a", "tie", "b", "a"], ["a", "a", "tie", "b", "b"]))


# ------------------------------------------------------------------------------ the votes file


def test_votes_are_whole_lines_and_survive_a_restart(tmp_path):
    path = tmp_path / "arena" / "votes.jsonl"
    append_vote(path, V("a", "b", "left"))
    append_vote(path, V("b", "a", "tie", voter="ü"))
    # a "restart": a fresh reader and writer on the same file
    append_vote(path, V("a", "b", "both_bad"))
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 3
    log = read_votes(path)
    assert [v.choice for v in log.votes] == ["left", "tie", "both_bad"] and not log.skipped
    assert log.votes[1].voter == "ü" and log.votes[0].winner() == "a" and log.votes[2].winner() is None
    assert set(json.loads(raw.splitlines()[0])) == {"voter", "time", "task", "item", "left", "right", "choice"}


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "votes.jsonl"

    def writer(k):
        for i in range(40):
            append_vote(path, V("a", "b", "left", item=f"{k}-{i}", voter="x" * 300))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = read_votes(path)
    assert len(log.votes) == 160 and not log.skipped


def test_torn_last_line_is_skipped_with_a_warning_and_the_next_vote_is_kept(tmp_path):
    path = tmp_path / "votes.jsonl"
    append_vote(path, V("a", "b", "left"))
    whole = json.dumps(V("a", "b", "right").to_dict()).encode()
    with open(path, "ab") as f:
        f.write(whole[:30])  # a crash in the middle of a write
    log = read_votes(path)
    assert len(log.votes) == 1
    assert log.skipped == [f"{path}:2: torn last line (no newline: a write was interrupted); skipped"]
    append_vote(path, V("a", "b", "tie"))  # starts on a fresh line
    log = read_votes(path)
    assert [v.choice for v in log.votes] == ["left", "tie"]
    assert len(log.skipped) == 1 and log.skipped[0].startswith(f"{path}:2: not a JSON vote")
    # a complete vote whose newline was lost is still a vote
    with open(path, "ab") as f:
        f.write(whole)
    assert [v.choice for v in read_votes(path).votes] == ["left", "tie", "right"]


def test_bad_rows_are_named_and_skipped(tmp_path):
    path = tmp_path / "votes.jsonl"
    good = V("a", "b", "left").to_dict()
    rows = [good, {**good, "choice": "maybe"}, {**good, "right": "a"}, [1], {k: v for k, v in good.items() if k != "item"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    log = read_votes(path)
    assert len(log.votes) == 1
    assert [s.split(": ", 1)[1] for s in log.skipped] == [
        "choice 'maybe' is not one of left, right, tie, both_bad; skipped",
        "the same model 'a' on both sides; skipped", "not a JSON object; skipped",
        "field 'item' is missing or not text; skipped"]
    assert read_votes(tmp_path / "none.jsonl").votes == []
    with pytest.raises(ValueError, match="choice"):
        V("a", "b", "left-ish")


# ------------------------------------------------------------------------------ the run and its input checks


def _samples(models=MODELS, items=6, task="demo-en"):
    return {(m, task): [Sample(id=f"q{i}", task=task, model=m, instruction=f"Question {i}: what is {i} + {i}?",
                               response=f"Answer {QUALITY[m]} {i} + {i} = {2 * i}.") for i in range(items)]
            for m in models}


def _verdicts(models=MODELS, items=6, task="demo-en"):
    """A pairwise judge on every pair: the better quality wins, except q1 (tie) and q2 (reversed)."""
    out = {}
    for x in range(len(models)):
        for y in range(x + 1, len(models)):
            a, b = models[x], models[y]
            rows = []
            for i in range(items):
                better, worse = (a, b) if RANK[QUALITY[a]] > RANK[QUALITY[b]] else (b, a)
                winner = "tie" if i == 1 else worse if i == 2 else better
                rows.append(_pair_verdict(a, b, f"q{i}", winner, task=task))
            out[(JUDGE, f"{a}_vs_{b}", task)] = rows
    return out


SCORES = {"schema": 1, "run_id": "arena-test", "models": MODELS, "groups": {}}


@pytest.fixture
def arena_run(make_run):
    return make_run("run", SCORES, config={"seed": 3, "bootstrap_resamples": 500}, samples=_samples(),
                    verdicts=_verdicts(), run_info={"run_id": "arena-test"})


def _cli_error(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_bad_input_is_one_line_exit_2(tmp_path, make_run, arena_run):
    assert "nope is not a run directory" in _cli_error("arena", str(tmp_path / "nope"))
    empty = make_run("empty", SCORES)
    assert "no stored answers" in _cli_error("arena", str(empty.path))
    single = make_run("single", SCORES, samples=_samples(["sft"]))
    assert "needs answers of two models" in _cli_error("arena", str(single.path))
    line = _cli_error("arena", str(arena_run.path), "--models", "sft,dpoo")
    assert "'dpoo'" in line and "did you mean 'dpo'" in line
    assert "needs answers of two models" in _cli_error("arena", str(arena_run.path), "--models", "sft")
    assert "is not a TCP port" in _cli_error("arena", str(arena_run.path), "--port", "70000")
    with pytest.raises(HarnessError, match="no prompt item was answered by two"):
        ArenaPool.from_run(make_run("apart", SCORES, samples={**_samples(["sft"], task="a"),
                                                            **_samples(["dpo"], task="b")}).path)


def test_arena_help_does_not_import_gradio():
    code = ("import sys; from typer.testing import CliRunner; from harness.cli import app; "
            "r = CliRunner().invoke(app, ['arena', '--help'], env={'COLUMNS': '200'}); "
            "assert r.exit_code == 0 and '--voter' in r.output and '--port' in r.output, r.output; "
            "print('gradio' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_pool_draws_two_different_models_in_both_orders(arena_run):
    import random

    pool = ArenaPool.from_run(arena_run.path)
    rng = random.Random(0)
    seen = {(m.left, m.right) for m in (pool.draw(rng) for _ in range(200))}
    assert all(a != b for a, b in seen) and len(seen) == 6  # every ordered pair of three models
    m = pool.draw(rng)
    assert m.prompt.startswith("Question") and QUALITY[m.left] in m.left_answer


# ------------------------------------------------------------------------------ the real server


@pytest.fixture
def serve(arena_run):
    """``serve(**kw)`` starts the arena on a free 127.0.0.1 port; every server stops after the test."""
    pytest.importorskip("gradio_client")
    from fake_judge_server import free_port

    from harness import api

    started = []

    def start(**kw):
        demo = api.arena(arena_run.path, port=free_port(), seed=0, **kw)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.close()


def _vote_like_a_human(client, voter: str) -> tuple[str, str, str, str]:
    """Get a pair, vote as a reader would (better answer; both bad on question 3), return
    (choice, left quality, right quality, reveal text)."""
    prompt, left, right, note = client.predict(api_name="/next")
    shown = f"{prompt}\n{left}\n{right}\n{note}"
    assert not any(m in shown for m in MODELS), shown  # identities stay hidden before the vote
    ql, qr = (next(q for q in RANK if q in text) for text in (left, right))
    choice = ("both_bad" if prompt.startswith("Question 3:") else "tie" if ql == qr
              else "left" if RANK[ql] > RANK[qr] else "right")
    reveal = client.predict(voter, api_name=f"/vote_{choice}")
    return choice, ql, qr, reveal


def test_server_round_trip_restart_and_report(serve, arena_run):
    from gradio_client import Client

    from harness import api
    from harness.arena.agreement import judge_human_agreement
    from harness.report.rows import fmt

    client = Client(serve().local_url, verbose=False)
    votes_file = arena_run.arena_votes_path()
    for k in range(8):
        choice, ql, qr, reveal = _vote_like_a_human(client, "alice")
        stored = read_votes(votes_file).votes
        assert len(stored) == k + 1
        last = stored[-1]
        assert (last.choice, last.voter, last.task) == (choice, "alice", "demo-en")
        assert (QUALITY[last.left], QUALITY[last.right]) == (ql, qr)
        assert f"Left was **{last.left}**, right was **{last.right}**" in reveal  # names shown after the vote
    again = client.predict("alice", api_name="/vote_left")
    assert "Already counted" in again and len(read_votes(votes_file).votes) == 8

    # a restart loses nothing; an empty name gets a per-session id
    client2 = Client(serve().local_url, verbose=False)
    _vote_like_a_human(client2, "")
    log = read_votes(votes_file)
    assert len(log.votes) == 9 and not log.skipped and log.votes[-1].voter.startswith("anon-")

    md_path, html_path = api.report(arena_run.path)
    md, html = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    arena = md[md.index("\n## Arena\n"):]
    assert "9 human votes from 2 voter(s)" in arena and "500 rounds, seed 3" in arena
    want = bradley_terry(MODELS, comparisons(log.votes), rounds=500, seed=3)
    for rank, r in enumerate((r for r in want if r.rating is not None), 1):
        assert f"| {rank} | **{r.model}** | {r.rating:.0f} | [{r.ci[0]:.0f}, {r.ci[1]:.0f}] |" in arena
    rated = [r.model for r in want if r.rating is not None]
    assert rated == sorted(rated, key=lambda m: -RANK[QUALITY[m]])  # the humans preferred better answers
    (ag,) = judge_human_agreement(log.votes, [v for rows in _verdicts().values() for v in rows])
    assert ag.n == 9 and ag.judge_missing == 0
    kappa = fmt(ag.kappa, 2) if ag.kappa is not None else "–"
    assert f"| {JUDGE} | 9 | {fmt(100 * ag.agree, 0)}% | {kappa} |" in arena
    assert 'id="arena"' in html and 'id="arena-ranking"' in html and "Cohen's κ" in html
    assert 'href="#arena"' in html


def test_port_in_use_is_a_user_error(serve, arena_run):
    import socket

    from harness import api

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(HarnessError, match=f"--port {port}: cannot listen"):
            api.arena(arena_run.path, port=port)


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,900", "--virtual-time-budget=20000",
                # nothing but this machine resolves: the page must work offline
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def test_page_is_offline(serve):
    import re
    import urllib.request

    url = serve().local_url
    page = urllib.request.urlopen(url, timeout=30).read().decode("utf-8")
    loaded = re.findall(r'<(?:script|link|img|iframe)\b[^>]*?(?:src|href)="([^"]+)"', page)
    assert loaded and all(not u.startswith(("http:", "https:", "//")) or u.startswith(url.rstrip("/"))
                          for u in loaded), loaded
    assert "googleapis" not in page and "googletagmanager" not in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_chromium_screenshot_of_the_arena(serve, tmp_path):
    url = serve().local_url
    dom = subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'ud1'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    for part in ('id="arena-prompt"', 'id="arena-left"', 'id="arena-right"', "Left is better", "Both bad",
                 "Next pair"):
        assert part in dom, part
    png = tmp_path / "arena.png"
    subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'ud2'}", f"--screenshot={png}", url],
                   capture_output=True, timeout=120, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_the_command_serves_until_ctrl_c(arena_run):
    import signal

    pytest.importorskip("gradio_client")
    from fake_judge_server import free_port
    from gradio_client import Client

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "arena", str(arena_run.path), "--port", str(port),
                             "--voter", "bob", "--models", "dpo,base"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"arena: http://127.0.0.1:{port}/ (votes: {arena_run.path / 'arena' / 'votes.jsonl'}")
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(api_name="/next")
        assert "Your vote: a tie" in client.predict("", api_name="/vote_tie")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "arena stopped" in out
    (vote,) = read_votes(arena_run.arena_votes_path()).votes
    assert vote.voter == "bob" and {vote.left, vote.right} == {"dpo", "base"} and vote.choice == "tie"
