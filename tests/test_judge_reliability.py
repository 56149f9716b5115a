"""A judge that always answers (log-prob scoring) and its reliability card, and the judge gate rule."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_judge_server import Action

from harness.judging import JudgeItem, PairItem, judge_pairwise, judge_pointwise, load_judge, make_backend
from harness.judging.logprob import from_candidates, score_from_tokens, score_values, verdict_from_tokens
from harness.judging.reliability import family, logistic_fit, model_root, reliability_card, self_preference
from harness.records import Verdict

FAST = {"backoff": 0.01, "max_backoff": 0.05}
L = math.log

# {"rationale": "ok", "score": 80}: the score written as one token with alternatives
SCORE_ONE_TOKEN = [('{"', L(0.99), []), ("rationale", L(0.9), []), ('":', L(0.99), []), (' "ok",', L(0.5), []),
                   (' "', L(0.99), []), ("score", L(0.99), []), ('":', L(0.99), []),
                   (" 80", L(0.6), [(" 80", L(0.6)), (" 90", L(0.3)), (" 70", L(0.05)), (" great", L(0.05))]),
                   ("}", L(0.99), [])]
# {"score": 85} written digit by digit
SCORE_DIGITS = [('{"', L(1.0), []), ("score", L(1.0), []), ('":', L(1.0), []), (" ", L(1.0), []),
                ("8", L(0.5), [("8", L(0.5)), ("9", L(0.3)), ("7", L(0.2))]),
                ("5", L(0.6), [("5", L(0.6)), ("0", L(0.4))]), ("}", L(1.0), [])]
WINNER = [('{"', L(1.0), []), ("winner", L(1.0), []), ('":', L(1.0), []), (' "', L(1.0), []),
          ("A", L(0.7), [("A", L(0.7)), ("B", L(0.2)), ("t", L(0.1))]), ('"}', L(1.0), [])]


def item(i, answer="an answer", model="sft"):
    return JudgeItem(id=str(i), task="demo-en", model=model, question=f"q {i}", reference="ref", answer=answer)


# ------------------------------------------------------------------ arithmetic


def test_score_values_and_candidates():
    assert score_values(0, 100) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert score_values(1, 10) == list(range(1, 11))
    assert score_values(1, 100) == [1, 11, 21, 31, 41, 51, 60, 70, 80, 90, 100]
    # two endings per score: probabilities add up
    s = from_candidates("pointwise", [("0", L(0.1)), ("0", L(0.1)), ("100", L(0.3)), ("100", L(0.1))])
    assert s.distribution == pytest.approx({"0": 1 / 3, "100": 2 / 3})
    assert s.value == pytest.approx(200 / 3) and s.mass == pytest.approx(0.6)
    p = from_candidates("pairwise", [("A", L(0.1)), ("B", L(0.6)), ("tie", L(0.3))])
    assert p.value == "B" and sum(p.distribution.values()) == pytest.approx(1.0)


def test_expected_score_from_top_logprobs_by_hand():
    one = score_from_tokens(SCORE_ONE_TOKEN, 0, 100)
    # (80 * .6 + 90 * .3 + 70 * .05) / .95; " great" is no score
    assert one.value == pytest.approx(78.5 / 0.95)
    assert one.distribution == pytest.approx({"80": 0.6 / 0.95, "90": 0.3 / 0.95, "70": 0.05 / 0.95})
    assert one.mass == pytest.approx(0.95)
    digits = score_from_tokens(SCORE_DIGITS, 0, 100)
    # tens: 8 * .5 + 9 * .3 + 7 * .2 = 8.1; units given 8: 5 * .6 + 0 * .4 = 3 -> 84
    assert digits.value == pytest.approx(84.0)
    w = verdict_from_tokens(WINNER)
    assert w.value == "A" and w.distribution == pytest.approx({"A": 0.7, "B": 0.2, "tie": 0.1})
    assert score_from_tokens([("no json here", 0.0, [])], 0, 100) is None


# ------------------------------------------------------------------ servers with log-probs


@pytest.fixture
def srv(fake_judge):
    s = fake_judge(models=["llama3:latest", "judge-model"])
    yield s
    s.stop()


def _backend(kind, srv, **opts):
    if kind == "ollama":
        return make_backend("ollama:llama3", {"host": srv.url, "timeout": 5, **opts})
    return make_backend("openai:judge-model", {"base_url": srv.openai_url, "api_key": "t", "timeout": 5, **opts})


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_logprob_scoring_against_a_server(kind, srv, tmp_path):
    srv.push(Action.tokens(SCORE_ONE_TOKEN), Action.tokens(SCORE_DIGITS), Action.text("Score: 40"))
    vs = judge_pointwise(load_judge("reference-0-100"), _backend(kind, srv), [item(0), item(1), item(2)],
                         cache_dir=tmp_path, concurrency=1, **FAST)
    assert vs[0].score == pytest.approx(78.5 / 0.95) and vs[0].meta["method"] == "logprob"
    assert vs[0].meta["text_value"] == 80 and vs[0].rationale == "ok" and '"score": 80' in vs[0].raw
    assert set(vs[0].meta["distribution"]) == {"80", "90", "70"}
    assert vs[1].score == pytest.approx(84.0) and vs[1].meta["method"] == "logprob"
    assert vs[2].score == 40 and vs[2].meta["method"] == "text"  # no log-probs in the reply: parsed
    sent = [p for path, p in srv.requests if path in ("/v1/chat/completions", "/api/chat")]
    assert all(p.get("logprobs") is True and p.get("top_logprobs") == 20 for p in sent)
    # cached with its method and distribution
    again = judge_pointwise(load_judge("reference-0-100"), _backend(kind, srv), [item(0)], cache_dir=tmp_path, **FAST)
    assert again[0].score == vs[0].score and again[0].meta["method"] == "logprob"


def test_pairwise_logprobs_and_scoring_text(srv, tmp_path):
    srv.push(Action.tokens(WINNER), Action.tokens(WINNER))
    pair = PairItem(id="1", task="t", model_a="sft", answer_a="x", model_b="base", answer_b="yy", question="q")
    [v] = judge_pairwise(load_judge("pairwise"), _backend("openai", srv), [pair], cache_dir=tmp_path,
                         concurrency=1, **FAST)
    assert v.meta["orders"] == {"ab": "A", "ba": "A"} and v.winner == "tie" and v.meta["consistent"] is False
    assert v.meta["method"] == "logprob" and v.meta["distribution"]["ab"] == pytest.approx({"A": .7, "B": .2, "tie": .1})
    srv.reset()
    _ = judge_pointwise(load_judge("reference-0-100"), _backend("openai", srv, scoring="text"), [item(5)],
                        use_cache=False, **FAST)
    assert "logprobs" not in srv.requests[-1][1]


def test_server_refusing_logprobs_is_asked_without(srv, tmp_path):
    srv.refuse_logprobs = True
    b = _backend("openai", srv)
    vs = judge_pointwise(load_judge("reference-0-100"), b, [item(0, "SCORE=70"), item(1, "SCORE=30")],
                         use_cache=False, concurrency=1, **FAST)
    assert [v.score for v in vs] == [70, 30] and all(v.meta["method"] == "text" for v in vs)
    assert b.top_logprobs == 0 and srv.chat_count() == 3  # one refusal, then never asked again


# ------------------------------------------------------------------ in-process judge


def _tiny_judge(tiny_models, tmp_path):
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.resolve import resolve_models

    pool = ModelPool(resolve_models({"judge": ModelSpec(path=str(tiny_models["base"]))}, tmp_path), device="cpu")

    def loglikelihood(requests):
        return [lp for lp, _ in pool.engine("judge").loglikelihood(list(requests))]

    def generate(prompts):
        raise AssertionError("a log-prob judge does not generate")

    def fmt(messages):
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "

    return make_backend("hf:tiny", {"generate": generate, "format_chat": fmt, "loglikelihood": loglikelihood})


def test_in_process_judge_always_answers(tiny_models, tmp_path):
    b = _tiny_judge(tiny_models, tmp_path)
    answers = ["", "Paris", "a long rambling answer " * 5, "{}", "100"]
    vs = judge_pointwise(load_judge("reference-0-100"), b, [item(i, a) for i, a in enumerate(answers)],
                         use_cache=False, concurrency=4, **FAST)
    for v in vs:
        assert v.score is not None and 0 <= v.score <= 100 and v.error is None
        assert v.meta["method"] == "logprob"
        assert set(v.meta["distribution"]) <= {str(x) for x in range(0, 101, 10)}
    [pv] = judge_pairwise(load_judge("pairwise"), b, [PairItem(id="1", task="t", model_a="sft", answer_a="x",
                                                                model_b="base", answer_b="y", question="q")],
                          use_cache=False, **FAST)
    assert pv.winner is not None and set(pv.meta["orders"].values()) <= {"A", "B", "tie"}


def test_in_process_distribution_sums_to_one(tiny_models, tmp_path):
    b = _tiny_judge(tiny_models, tmp_path)
    s = b.score([{"role": "user", "content": "grade it"}], "pointwise", 1, 10)
    assert set(s.distribution) == {str(x) for x in range(1, 11)}
    assert sum(s.distribution.values()) == pytest.approx(1.0)
    assert s.value == pytest.approx(sum(int(k) * p for k, p in s.distribution.items()))
    assert 0 < s.mass <= 1


@pytest.mark.slow
def test_zoo_judge_scores_every_item(tmp_path):
    """The demo's judge (SmolLM2-135M-Instruct, in process) leaves nothing missing."""
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.resolve import resolve_models

    pool = ModelPool(resolve_models({"judge": ModelSpec(path="zoo:smollm2-135m-instruct")}, tmp_path), device="cpu")
    fmt = pool.format("judge", "chat")
    b = make_backend("hf:zoo:smollm2-135m-instruct", {
        "generate": lambda ps: [g.raw for g in pool.engine("judge").generate(ps, fmt=None, max_new_tokens=32)],
        "format_chat": fmt.render_messages,
        "loglikelihood": lambda rs: [lp for lp, _ in pool.engine("judge").loglikelihood(list(rs))]})
    vs = judge_pointwise(load_judge("reference-0-100"), b, [item(i, a) for i, a in
                                                            enumerate(["Paris", "", "I don't know", "ref"])],
                         use_cache=False, **FAST)
    assert all(v.score is not None and v.meta["method"] == "logprob" for v in vs)


# ------------------------------------------------------------------ the card


def pv(i, winner, orders, la=10, lb=10, a="sft", b="base", **meta):
    m = {"model_a": a, "model_b": b, "len_a": la, "len_b": lb, "orders": orders, **meta}
    if orders.get("ab") is not None and orders.get("ba") is not None:
        side = {"A": "a", "B": "b", "tie": "tie"}
        swap = {"A": "b", "B": "a", "tie": "tie"}
        m["consistent"] = side[orders["ab"]] == swap[orders["ba"]]
    return Verdict(id=str(i), task="t", model=f"{a}_vs_{b}", judge="pairwise", winner=winner, meta=m)


def test_card_figures_by_hand():
    pointwise = [Verdict(id=str(i), task="t", model="sft", judge="ref", score=50.0, meta={"method": "logprob"})
                 for i in range(3)]
    pointwise += [Verdict(id="9", task="t", model="sft", judge="ref", error="unparseable after 2 replies: x"),
                  Verdict(id="8", task="t", model="sft", judge="ref", error="HTTP 500")]
    pair = [pv(0, "sft", {"ab": "A", "ba": "B"}),          # consistent, sft
            pv(1, "tie", {"ab": "A", "ba": "A"}),          # inconsistent: first slot twice
            pv(2, "tie", {"ab": "tie", "ba": "tie"}),      # consistent tie
            pv(3, None, {"ab": "B", "ba": None})]          # missing
    card = reliability_card(pointwise + pair, judge_spec="ollama:llama3",
                            models={"base": {"path": "zoo:smollm2-135m-instruct"}, "sft": {"adapter": "x", "base": "base"}},
                            evaluated=["base", "sft"])
    ref = card["judges"]["ref"]["figures"]
    assert ref["missing"] == {"value": 0.4, "n": 5, "count": 2}
    assert ref["parse_failure"]["value"] == pytest.approx(0.2)
    assert ref["logprob_share"]["value"] == 1.0
    assert ref["position_consistency"]["value"] is None and "pointwise" in ref["position_consistency"]["reason"]
    assert ref["flip_rate"]["value"] is None and "repeats" in ref["flip_rate"]["reason"]
    pw = card["judges"]["pairwise"]["figures"]
    assert pw["missing"]["value"] == pytest.approx(0.25)
    assert pw["position_consistency"] == {"value": pytest.approx(2 / 3), "n": 3, "count": 2}
    # order letters: A, B, A, A, tie, tie, B -> decided 5, of which A 3
    assert pw["first_slot"] == {"value": pytest.approx(0.6), "n": 5, "count": 3}
    assert pw["tie_rate"] == {"value": pytest.approx(2 / 7), "n": 7, "count": 2}
    assert pw["length_effect"]["value"] is None and "needs 10" in pw["length_effect"]["reason"]
    assert card["self_preference"]["value"] is False


def test_flip_rate_over_repeats():
    vs = [Verdict(id="1", task="t", model="m", judge="j", score=5, meta={"scores": [5, 5, 5]}),
          Verdict(id="2", task="t", model="m", judge="j", score=5, meta={"scores": [4, 5, 6]}),
          pv(3, "sft", {"ab": "A", "ba": "B"}, votes={"ab": ["A", "A"], "ba": ["B", "A"]})]
    card = reliability_card(vs)
    assert card["judges"]["j"]["figures"]["flip_rate"] == {"value": 0.5, "n": 2, "count": 1}
    assert card["judges"]["pairwise"]["figures"]["flip_rate"]["value"] == 1.0


def test_logistic_fit_recovers_a_known_curve():
    b0, b1 = 0.4, -1.3
    xs = [i / 10 - 3 for i in range(61)]
    ys = [1 / (1 + math.exp(-(b0 + b1 * x))) for x in xs]  # exact expected outcomes: the MLE is (b0, b1)
    beta, se = logistic_fit([[1.0, x] for x in xs], ys, ridge=0.0)
    assert beta == pytest.approx([b0, b1], abs=1e-6) and all(s > 0 for s in se)


def test_length_effect_and_length_controlled_win_rate():
    # sft wins exactly when its answer is longer: a strong length effect; at equal length a coin flip
    vs = []
    for i in range(40):
        d = (i % 8 - 3.5) * 50  # -175 .. +175 characters
        win = d > 0 if i % 5 else d < 0  # some noise so the fit stays finite
        vs.append(pv(i, "sft" if win else "base", {"ab": "A", "ba": "B"}, la=500 + d, lb=500))
    figs = reliability_card(vs)["judges"]["pairwise"]["figures"]
    le = figs["length_effect"]
    assert le["value"] > 0.5 and le["ci"][0] > 0 and le["n"] == 40
    lc = figs["length_controlled"]["pairs"]["sft_vs_base"]
    assert lc["raw"] == pytest.approx(0.5) and abs(lc["value"] - 0.5) < 0.1 and lc["n"] == 40


def test_self_preference_family():
    models = {"base": {"path": "zoo:smollm2-135m-instruct"}, "sft": {"adapter": "sft", "base": "base"},
              "other": {"path": "Qwen/Qwen2.5-0.5B"}}
    assert model_root("sft", models) == "zoo:smollm2-135m-instruct"
    assert family("ollama:llama3:8b") == "llama" and family("Qwen/Qwen2.5-0.5B") == "qwen"
    sp = self_preference("hf:zoo:smollm2-135m-instruct", models, ["base", "sft", "other"])
    assert sp["value"] is True and sp["models"] == ["base", "sft"]
    assert self_preference("openai:gpt-4o", models, ["base", "other"])["value"] is False


def test_report_shows_the_card():
    from harness.report.judge_card import card_rows

    card = reliability_card([Verdict(id="1", task="t", model="m", judge="ref", score=5.0, meta={"method": "logprob"})])
    header, rows = card_rows(card)
    assert header[:2] == ["figure", "ref"]
    cells = {r[0]: r[1] for r in rows}
    assert cells["missing"] == "0% (0/1)" and cells["position consistency"].startswith("– (pointwise")
    assert card_rows(None) == ([], [])


# ------------------------------------------------------------------ the gate rule


def _run(make_run, card):
    scores = {"schema": 1, "models": ["sft"], "groups": {}}
    if card is not None:
        scores["judge_reliability"] = card
    return make_run(scores=scores, config={"models": {"sft": {"path": "x"}}})


def test_judge_gate_pass_fail_and_fail_closed(make_run):
    from harness.errors import HarnessError
    from harness.gate import evaluate_gates, parse_rule

    pair = [pv(i, "sft", {"ab": "A", "ba": "B"}) for i in range(7)] + \
           [pv(i, "tie", {"ab": "A", "ba": "A"}) for i in range(7, 10)]
    rule = {"judge": {"max_missing": 0.1, "min_position_consistency": 0.7}}
    ok = evaluate_gates(_run(make_run, reliability_card(pair)).path, [rule])
    assert ok.passed and [r.actual for r in ok.rows] == [0.0, pytest.approx(0.7)]

    worse = pair[:5] + [pv(i, None, {"ab": "A", "ba": None}) for i in (20, 21)] + pair[7:]  # 2/10 missing, 5/8
    bad = evaluate_gates(_run(make_run, reliability_card(worse)).path, [rule])
    assert [r.passed for r in bad.rows] == [False, False] and "is not <=" in bad.rows[0].reason

    # a pointwise judge only: no position consistency -> fail closed; no judge at all -> fail closed
    point = reliability_card([Verdict(id="1", task="t", model="sft", judge="ref", score=5.0)])
    rows = evaluate_gates(_run(make_run, point).path, [rule]).rows
    assert rows[0].passed and not rows[1].passed and rows[1].reason.startswith("fail-closed")
    none = evaluate_gates(_run(make_run, None).path, [rule]).rows
    assert all(not r.passed and "no judge ran" in r.reason for r in none)

    with pytest.raises(HarnessError, match="judge.max_missin is not one of"):
        parse_rule({"judge": {"max_missin": 0.1}})
    with pytest.raises(HarnessError, match="from 0 to 1"):
        parse_rule({"judge": {"max_missing": 2}})


def test_score_stage_stores_the_card_and_reports_show_it(make_run):
    from harness.report import write_reports
    from harness.stages import score

    pointwise = [Verdict(id=str(i), task="demo-en", model=m, judge="reference-0-100", score=50.0 + i,
                         meta={"method": "logprob"}) for m in ("base", "sft") for i in range(3)]
    run = make_run(config={"models": {"base": {"path": "zoo:smollm2-135m-instruct"},
                                      "sft": {"adapter": "sft", "base": "base"}}},
                   run_info={"run_id": "r", "models_order": ["base", "sft"], "tasks": ["demo-en"],
                             "judge": {"backend": "hf:zoo:smollm2-135m-instruct", "judges": ["reference-0-100"]}},
                   verdicts={("reference-0-100", m, "demo-en"): [v for v in pointwise if v.model == m]
                             for m in ("base", "sft")})
    scores = score.execute(run)
    card = scores["judge_reliability"]
    figs = card["judges"]["reference-0-100"]["figures"]
    assert figs["missing"] == {"value": 0.0, "n": 6, "count": 0} and figs["logprob_share"]["value"] == 1.0
    assert card["self_preference"]["models"] == ["base", "sft"]
    md, html = write_reports(run.path)
    text = md.read_text(encoding="utf-8")
    assert "### Judge reliability" in text and "0% (0/6)" in text and "Self-preference risk" in text
    page = html.read_text(encoding="utf-8")
    assert "Judge reliability" in page and "100% (6/6)" in page


def test_in_process_engine_without_logprobs_falls_back_to_text():
    from harness.judging.protocol import LogprobsUnavailable

    def loglikelihood(requests):
        raise LogprobsUnavailable("served without prompt log-probs")

    b = make_backend("hf:x", {"generate": lambda ps: ['{"rationale": "r", "score": 70}' for _ in ps],
                              "format_chat": lambda ms: ms[-1]["content"], "loglikelihood": loglikelihood})
    vs = judge_pointwise(load_judge("reference-0-100"), b, [item(0), item(1)], use_cache=False, concurrency=1, **FAST)
    assert [v.score for v in vs] == [70, 70] and all(v.meta["method"] == "text" for v in vs)
    assert b.scores_logprobs is False
