"""LLM-as-judge: the real ollama and openai clients against tests/fake_judge_server.py."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_judge_server import Action, FakeJudgeServer, free_port, last_user_text

from harness.errors import HarnessError
from harness.judging import (
    JudgeItem,
    PairItem,
    count_missing,
    default_pairs,
    judge_pairwise,
    judge_pointwise,
    load_judge,
    make_backend,
    parse_preference,
    parse_score,
    summarize_pairwise,
    summarize_pointwise,
)

FAST = {"backoff": 0.01, "max_backoff": 0.05}


@pytest.fixture
def srv(fake_judge):
    """A fresh server per test: scripted actions, responders and request counts never leak."""
    s = fake_judge(models=["llama3:latest", "judge-model"])
    yield s
    s.stop()


def backend_for(kind: str, srv: FakeJudgeServer, **opts):
    if kind == "ollama":
        return make_backend("ollama:llama3", {"host": srv.url, "timeout": 5, **opts})
    return make_backend(
        "openai:judge-model", {"base_url": srv.openai_url, "api_key": "test", "timeout": 5, **opts}
    )


def item(i, model="sft", answer="an answer", reference="the reference", lang="en", task="demo-en"):
    return JudgeItem(
        id=str(i),
        task=task,
        model=model,
        lang=lang,
        question=f"question {i}",
        reference=reference,
        answer=answer,
    )


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"score": 85, "rationale": "good"}', 85),
        ('```json\n{"rationale": "r", "score": "72"}\n```', 72),
        ('Sure! Here it is: {"score": 64, "rationale": "x"} hope it helps', 64),
        ("85", 85),
        ("Score: 85/100", 85),
        ("**85**", 85),
        ("I would give this answer 85 because it is nearly complete.", 85),
        ("The answer deserves 77 out of 100.", 77),
        ("점수: 90점", 90),
        ("Rating: [[8]]", 8),
        ("Score: 150", None),  # out of range -> unparseable, never clipped
        ("Score: -5", None),
        ("between 70 and 80", None),  # ambiguous
        ("I cannot judge this.", None),
        ("", None),
        ('{"score": "high"}', None),
    ],
)
def test_parse_score(text, expected):
    p = parse_score(text, 0, 100)
    assert p.value == expected
    assert (p.error is None) == (expected is not None)


def test_parse_score_uses_the_scale():
    assert parse_score("8/10", 1, 10).value == 8
    assert parse_score("11", 1, 10).value is None
    assert parse_score("0", 1, 10).value is None


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"rationale": "r", "winner": "B"}', "B"),
        ("A", "A"),
        ("[[A]]", "A"),
        ("Assistant B", "B"),
        ("tie", "tie"),
        ("[[C]]", "tie"),
        ("My final verdict is [[B]].", "B"),
        ("Assistant A is better than Assistant B because it is correct.", "A"),
        ("Both answers are equally good.", "tie"),
        ("답변 B가 더 낫습니다.", "B"),
        ("[[A]] ... no wait [[B]]", None),
        ("I like both.", None),
    ],
)
def test_parse_preference(text, expected):
    assert parse_preference(text).value == expected


# ------------------------------------------------------------------------------ backends


def test_make_backend_specs():
    b = make_backend("ollama:llama3:8b", {"host": "http://h:1"})
    assert (b.kind, b.model, b.spec, b.host) == ("ollama", "llama3:8b", "ollama:llama3:8b", "http://h:1")
    o = make_backend("openai:gpt-4o-mini", {"base_url": "http://x/v1"})
    assert (o.kind, o.model, o.base_url) == ("openai", "gpt-4o-mini", "http://x/v1")
    h = make_backend("hf:zoo:smollm2-135m-instruct", {"generate": lambda ps: ps, "format_chat": str})
    assert (h.kind, h.model) == ("hf", "zoo:smollm2-135m-instruct")
    assert make_backend("none", {}) is None
    with pytest.raises(HarnessError, match="not understood"):
        make_backend("vllm:foo", {})
    with pytest.raises(HarnessError, match="names no model"):
        make_backend("ollama:", {})
    with pytest.raises(HarnessError, match="generate and format_chat"):
        make_backend("hf:zoo:smollm2-135m-instruct", {})


def test_ollama_default_host(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert make_backend("ollama:llama3", {}).host == "http://localhost:11434"
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5000")
    assert make_backend("ollama:llama3", {}).host == "http://127.0.0.1:5000"


def test_unreachable_ollama_is_one_line():
    port = free_port()
    b = make_backend("ollama:llama3", {"host": f"http://localhost:{port}"})
    with pytest.raises(HarnessError) as e:
        b.check()
    assert str(e.value) == (
        f"Ollama is not reachable at http://localhost:{port}: start it with 'ollama serve' and "
        "'ollama pull llama3', or pass --judge none"
    )


def test_unreachable_ollama_default_host_message(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 11434)) == 0:
            pytest.skip("something listens on 11434 here")
    with pytest.raises(HarnessError) as e:
        make_backend("ollama:llama3", {"timeout": 2}).check()
    assert str(e.value) == (
        "Ollama is not reachable at http://localhost:11434: start it with 'ollama serve' and "
        "'ollama pull llama3', or pass --judge none"
    )


def test_unreachable_openai():
    port = free_port()
    b = make_backend("openai:judge-model", {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"})
    with pytest.raises(HarnessError, match=f"not reachable at http://127.0.0.1:{port}/v1.*--judge none"):
        b.check()


def test_openai_needs_a_key_for_the_default_url(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(HarnessError, match="OPENAI_API_KEY is not set"):
        make_backend("openai:gpt-4o-mini", {}).check()


def test_model_not_pulled(srv):
    with pytest.raises(HarnessError, match=r"has no model 'mistral'.*run 'ollama pull mistral'"):
        make_backend("ollama:mistral", {"host": srv.url}).check()
    make_backend("ollama:llama3", {"host": srv.url}).check()  # llama3 -> llama3:latest
    with pytest.raises(HarnessError, match="does not serve model 'gpt-x'"):
        make_backend("openai:gpt-x", {"base_url": srv.openai_url, "api_key": "k"}).check()
    assert srv.count("/api/tags") == 2 and srv.count("/v1/models") == 1


def test_ollama_request_carries_schema_and_options(srv):
    defn = load_judge("reference-0-100")
    b = make_backend("ollama:llama3", {"host": srv.url, "num_ctx": 4096, "seed": 7})
    judge_pointwise(defn, b, [item(0, answer="SCORE=61")], use_cache=False)
    path, payload = srv.requests[-1]
    assert path == "/api/chat"
    assert payload["format"]["properties"]["score"]["maximum"] == 100
    assert payload["options"] == {"temperature": 0.0, "num_ctx": 4096, "seed": 7}
    assert payload["messages"][0]["role"] == "system"


def test_openai_request_uses_json_schema(srv):
    defn = load_judge("reference-0-100")
    b = backend_for("openai", srv)
    [v] = judge_pointwise(defn, b, [item(0, answer="SCORE=61")], use_cache=False)
    assert v.score == 61
    _, payload = srv.requests[-1]
    assert payload["response_format"]["type"] == "json_schema"
    assert payload["response_format"]["json_schema"]["schema"]["required"] == ["rationale", "score"]
    assert payload["temperature"] == 0 and payload["seed"] == 0


# ------------------------------------------------------------------------------ pointwise


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_scripted_replies(kind, srv, tmp_path):
    """Clean JSON, prose, garbage, HTTP 500, dropped connection, out of range + re-ask."""
    defn = load_judge("reference-0-100")
    b = backend_for(kind, srv)
    srv.push(
        Action.json({"rationale": "right", "score": 85}),  # item 0: clean
        Action.text("The response is mostly right. Score: 70/100"),  # item 1: prose
        Action.text("I am a teapot."),
        Action.text("still no number here"),  # item 2: garbage twice
        Action.status(500),
        Action.json({"rationale": "ok", "score": 40}),  # item 3: 5xx, retried
        Action.drop(),
        Action.text("**90**"),  # item 4: dropped connection, retried
        Action.text("Score: 150"),
        Action.text("60"),  # item 5: out of range, re-asked
    )
    items = [item(i) for i in range(6)]
    vs = judge_pointwise(defn, b, items, cache_dir=tmp_path, concurrency=1, retries=2, reasks=1, **FAST)
    assert [v.score for v in vs] == [85, 70, None, 40, 90, 60]
    assert srv.chat_count() == 10
    assert [v.meta["requests"] for v in vs] == [1, 1, 2, 2, 2, 2]
    missing = vs[2]
    assert missing.score is None and missing.winner is None
    assert "unparseable after 2 replies" in missing.error
    assert "I am a teapot." in missing.raw and "still no number here" in missing.raw
    assert vs[0].rationale == "right"
    # the re-ask shows the bad reply and asks again for JSON
    reask = srv.requests[-1][1]["messages"]
    assert reask[-2] == {"role": "assistant", "content": "Score: 150"}
    assert "could not be read" in reask[-1]["content"]

    assert count_missing(vs) == {"sft": 1}
    group = summarize_pointwise(vs, ["sft"])
    mv = group["models"]["sft"]["reference-0-100"]
    assert mv["n"] == 5 and mv["missing"] == 1
    assert mv["value"] == pytest.approx((85 + 70 + 40 + 90 + 60) / 5)  # missing is not a 0
    lo, hi = mv["ci"]
    assert lo <= mv["value"] <= hi


def test_transport_failures_give_up_and_back_off(srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for("ollama", srv)
    srv.push(Action.status(500), Action.status(503), Action.status(502))
    t0 = time.perf_counter()
    [v] = judge_pointwise(defn, b, [item(0)], cache_dir=tmp_path, retries=2, backoff=0.1, max_backoff=1)
    elapsed = time.perf_counter() - t0
    assert v.score is None and "gave up after 3 tries" in v.error and "HTTP 502" in v.error
    assert srv.chat_count() == 3
    assert elapsed >= 0.3  # 0.1 + 0.2 s of exponential backoff
    # a 4xx is not retried
    srv.push(Action.status(400, "bad request"))
    [v] = judge_pointwise(defn, b, [item(1)], cache_dir=tmp_path, retries=2, **FAST)
    assert v.score is None and "HTTP 400" in v.error and srv.chat_count() == 4
    # nothing failed was cached: the same item is asked again
    [v] = judge_pointwise(defn, b, [item(0, answer="SCORE=33")], cache_dir=tmp_path, **FAST)
    assert v.score == 33 and srv.chat_count() == 5


def test_server_gone_mid_run_stops_sending(srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for("ollama", srv)
    srv.push(Action.json({"rationale": "ok", "score": 12}))
    srv.responder = lambda api, p: Action.status(503, "overloaded")
    items = [item(i) for i in range(30)]
    vs = judge_pointwise(
        defn, b, items, cache_dir=tmp_path, concurrency=1, retries=1, give_up_after=3, **FAST
    )
    assert vs[0].score == 12 and all(v.score is None for v in vs[1:])
    assert srv.chat_count() == 1 + 3 * 2  # 3 failed units x 2 tries, then nothing more is sent
    assert "not sent: the judge failed 3 times in a row" in vs[-1].error and "HTTP 503" in vs[-1].error
    assert count_missing(vs) == {"sft": 29}


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_slow_reply_times_out_and_is_retried(kind, srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for(kind, srv, timeout=0.3)
    srv.push(
        Action.json({"rationale": "late", "score": 1}, delay=1.0),
        Action.json({"rationale": "ok", "score": 55}),
    )
    [v] = judge_pointwise(defn, b, [item(0)], cache_dir=tmp_path, retries=1, **FAST)
    assert v.score == 55 and v.meta["requests"] == 2


def test_cache_prevents_second_request(srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for("ollama", srv)
    items = [item(i, answer=f"SCORE={10 * i}") for i in range(4)]
    first = judge_pointwise(defn, b, items, cache_dir=tmp_path, concurrency=4, **FAST)
    assert [v.score for v in first] == [0, 10, 20, 30] and srv.chat_count() == 4
    again = judge_pointwise(defn, b, items, cache_dir=tmp_path, concurrency=4, **FAST)
    assert [v.score for v in again] == [0, 10, 20, 30]
    assert [v.rationale for v in again] == [v.rationale for v in first]
    assert srv.chat_count() == 4 and all(v.meta["cached"] for v in again)
    # a new model's answers: only those are judged
    new = items + [item(i, model="dpo", answer=f"SCORE={10 * i + 5}") for i in range(2)]
    vs = judge_pointwise(defn, b, new, cache_dir=tmp_path, concurrency=4, **FAST)
    assert srv.chat_count() == 6 and [v.score for v in vs[4:]] == [5, 15]
    # another backend model or judge definition is another key
    other = make_backend("ollama:judge-model", {"host": srv.url})
    judge_pointwise(defn, other, items[:1], cache_dir=tmp_path, **FAST)
    assert srv.chat_count() == 7


def test_repeats_keep_median_and_spread(srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for("ollama", srv)
    srv.responder = lambda api, p: Action.json(
        {"rationale": f"seed {p['options']['seed']}", "score": 60 + 10 * p["options"]["seed"]}
    )
    [v] = judge_pointwise(defn, b, [item(0)], cache_dir=tmp_path, repeats=3, **FAST)
    assert v.score == 70 and v.spread == 20 and v.rationale == "seed 1"
    assert sorted(v.meta["scores"]) == [60, 70, 80] and srv.chat_count() == 3
    group = summarize_pointwise([v], ["sft"])
    assert group["info"]["spread"]["reference-0-100"]["sft"]["max"] == 20


def test_language_follows_the_sample(srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for("ollama", srv)
    vs = judge_pointwise(
        defn,
        b,
        [item(0, lang="ko", answer="SCORE=5"), item(1, lang="fr", answer="SCORE=6")],
        cache_dir=tmp_path,
        concurrency=1,
    )
    ko, fr = (last_user_text(p) for _, p in srv.requests[-2:])
    assert "[정답 출력]" in ko and "[Correct output]" in fr
    assert vs[0].meta["prompt_lang"] == "ko" and vs[1].meta["prompt_lang"] == "en"


def test_reference_required(srv, tmp_path):
    vs = judge_pointwise(
        load_judge("reference-0-100"), backend_for("ollama", srv), [item(0, reference="")], cache_dir=tmp_path
    )
    assert vs[0].score is None and "needs a reference" in vs[0].error and srv.chat_count() == 0
    # single-1-10 grades without reference, on its own scale
    [v] = judge_pointwise(
        load_judge("single-1-10"),
        backend_for("ollama", srv),
        [item(1, reference="", answer="SCORE=7")],
        cache_dir=tmp_path,
    )
    assert v.score == 7
    assert "[The Start of Assistant's Answer]" in last_user_text(srv.requests[-1][1])


def test_concurrency_and_progress(srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for("ollama", srv)
    srv.latency = 0.2
    seen = []
    t0 = time.perf_counter()
    vs = judge_pointwise(
        defn,
        b,
        [item(i, answer=f"SCORE={i}") for i in range(16)],
        cache_dir=tmp_path,
        concurrency=8,
        progress=lambda d, n: seen.append((d, n)),
    )
    elapsed = time.perf_counter() - t0
    assert [v.score for v in vs] == list(range(16))
    assert elapsed < 1.6, elapsed  # sequential would take 16 x 0.2 = 3.2 s
    assert seen[0] == (0, 16) and seen[-1] == (16, 16) and len(seen) == 17


def test_hf_backend_with_a_fake_generate(tmp_path):
    calls = []
    lock = threading.Lock()

    def generate(prompts):
        with lock:
            calls.append(len(prompts))
        time.sleep(0.05)
        out = []
        for p in prompts:
            n = int(p.split("SCORE=")[1].split()[0]) if "SCORE=" in p else None
            out.append(f"Score: {n}/100" if n is not None else "no idea")
        return out

    def format_chat(messages):
        return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"

    b = make_backend(
        "hf:zoo:smollm2-135m-instruct", {"generate": generate, "format_chat": format_chat, "batch_size": 8}
    )
    b.check()
    defn = load_judge("reference-0-100")
    items = [item(i, answer=f"SCORE={i}") for i in range(12)] + [item(99, answer="nothing")]
    vs = judge_pointwise(defn, b, items, cache_dir=tmp_path, concurrency=8, reasks=1, **FAST)
    assert [v.score for v in vs[:12]] == list(range(12))
    assert vs[12].score is None and "unparseable" in vs[12].error
    assert sum(calls) == 14 and len(calls) < 14 and max(calls) > 1  # batched

    # a failing generate() becomes missing verdicts, not a crash
    def boom(prompts):
        raise RuntimeError("CUDA out of memory")

    bad = make_backend("hf:x", {"generate": boom, "format_chat": format_chat})
    [v] = judge_pointwise(defn, bad, [item(0)], use_cache=False, **FAST)
    assert v.score is None and "CUDA out of memory" in v.error


# ------------------------------------------------------------------------------ pairwise


def pair(i, a="sft", b="base", ans_a="x", ans_b="y", question="q"):
    return PairItem(
        id=str(i),
        task="demo-en",
        model_a=a,
        answer_a=ans_a,
        model_b=b,
        answer_b=ans_b,
        question=f"{question} {i}",
    )


def biased_or_tagged(api, payload):
    text = last_user_text(payload)
    if "BIAS_FIRST" in text:
        return Action.json({"rationale": "the first one", "winner": "A"})  # position bias
    if "PROSE" in text:
        return Action.text("After careful thought, Assistant B is better.")
    from fake_judge_server import default_action

    return default_action(api, payload)


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_pairwise_both_orders_and_inconsistency(kind, srv, tmp_path):
    defn = load_judge("pairwise")
    b = backend_for(kind, srv)
    srv.responder = biased_or_tagged
    pairs = [
        pair(
            0, ans_a="GOOD answer, long enough", ans_b="bad", question="PREFER=GOOD"
        ),  # sft wins in both orders
        pair(1, ans_a="meh", ans_b="GOOD one", question="PREFER=GOOD"),  # base wins in both orders
        pair(2, ans_a="aaa", ans_b="bbbbbb", question="BIAS_FIRST"),  # A both times -> inconsistent -> tie
        pair(3, ans_a="one", ans_b="two", question="PREFER=nothing"),  # tie both times
        pair(4, ans_a="p", ans_b="q", question="PROSE"),  # B both times in prose -> inconsistent
    ]
    vs = judge_pairwise(defn, b, pairs, cache_dir=tmp_path, concurrency=4, **FAST)
    assert srv.chat_count() == 10  # both orders for every pair
    assert [v.winner for v in vs] == ["sft", "base", "tie", "tie", "tie"]
    assert [v.meta["consistent"] for v in vs] == [True, True, False, True, False]
    assert vs[2].meta["orders"] == {"ab": "A", "ba": "A"}
    assert all(v.model == "sft_vs_base" for v in vs)
    # the two requests of a pair show the answers in swapped positions
    texts = [
        last_user_text(p) for path, p in srv.requests if "chat" in path and "BIAS_FIRST" in last_user_text(p)
    ]
    firsts = sorted(t.split("Assistant A's Answer]\n")[1].split("\n")[0] for t in texts)
    assert firsts == ["aaa", "bbbbbb"]

    group = summarize_pairwise(vs, [("sft", "base")])
    m = group["models"]["sft_vs_base"]
    assert m["win"]["value"] == pytest.approx(0.2) and m["loss"]["value"] == pytest.approx(0.2)
    assert m["tie"]["value"] == pytest.approx(0.6) and m["consistency"]["value"] == pytest.approx(0.6)
    assert m["win"]["ci"] is not None and m["win"]["n"] == 5
    info = group["info"]["pairs"]["sft_vs_base"]
    assert info["inconsistent"] == 2 and info["inconsistent_ids"] == ["demo-en/2", "demo-en/4"]
    assert info["mean_len_winner"] == pytest.approx((len("GOOD answer, long enough") + len("GOOD one")) / 2)
    assert info["mean_len_loser"] == pytest.approx((len("bad") + len("meh")) / 2)

    # cached: no new requests
    again = judge_pairwise(defn, b, pairs, cache_dir=tmp_path, concurrency=4, **FAST)
    assert [v.winner for v in again] == [v.winner for v in vs] and srv.chat_count() == 10


def test_pairwise_one_order_failing_is_missing(srv, tmp_path):
    defn = load_judge("pairwise")
    b = backend_for("ollama", srv)
    srv.push(Action.json({"rationale": "r", "winner": "A"}), Action.status(500), Action.status(500))
    [v] = judge_pairwise(defn, b, [pair(0)], cache_dir=tmp_path, concurrency=1, retries=1, **FAST)
    assert v.winner is None and "gave up after 2 tries" in v.error
    group = summarize_pairwise([v], [("sft", "base")])
    assert group["models"]["sft_vs_base"]["win"]["value"] is None
    assert group["models"]["sft_vs_base"]["win"]["missing"] == 1


def test_default_pairs():
    assert default_pairs(["base", "sft", "dpo"]) == [("sft", "base"), ("dpo", "sft"), ("dpo", "base")]


def test_summarize_pointwise_pairs_models(srv, tmp_path):
    defn = load_judge("reference-0-100")
    b = backend_for("ollama", srv)
    items = []
    for i in range(20):
        items.append(item(i, model="base", answer=f"SCORE={40 + i % 5}"))
        items.append(item(i, model="sft", answer=f"SCORE={70 + i % 7}"))
    vs = judge_pointwise(defn, b, items, cache_dir=tmp_path, concurrency=8)
    group = summarize_pointwise(vs, ["base", "sft"])
    assert json.loads(json.dumps(group)) == group  # serialisable as is
    assert group["kind"] == "judge"
    [t] = group["paired"]
    assert (t["a"], t["b"], t["metric"]) == ("sft", "base", "reference-0-100")
    assert t["diff"] > 25 and t["significant"] and t["n"] == 20
    assert set(group["info"]["by_task"]["reference-0-100"]["demo-en"]) == {"base", "sft"}


# ------------------------------------------------------------------------------ definitions


def test_load_judge_validates(tmp_path):
    for name in ("reference-0-100", "pairwise", "single-1-10"):
        d = load_judge(name)
        assert set(d.templates) >= {"en", "ko"} and len(d.hash) == 64
    j = tmp_path / "bad"
    j.mkdir()
    (j / "p.j2").write_text("{{ question }} {{ answer }}")
    (j / "judge.yaml").write_text("name: bad\nkind: ranking\nprompts: {en: p.j2}\n")
    with pytest.raises(HarnessError, match=r"judge.yaml: field 'kind'"):
        load_judge(j)
    (j / "judge.yaml").write_text("name: bad\nkind: pointwise\nprompts: {en: p.j2}\n")
    with pytest.raises(HarnessError, match=r"field '\(top level\)'.*needs scale"):
        load_judge(j)
    (j / "judge.yaml").write_text(
        "name: bad\nkind: pointwise\nscale: {min: 0, max: 10}\nprompts: {en: missing.j2}\n"
    )
    with pytest.raises(HarnessError, match=r"field 'prompts.en'.*not found"):
        load_judge(j)
    (j / "q.j2").write_text("{{ question }} {{ answr }}")
    (j / "judge.yaml").write_text(
        "name: bad\nkind: pointwise\nscale: {min: 0, max: 10}\nprompts: {en: q.j2}\n"
    )
    with pytest.raises(HarnessError, match=r"unknown template variable\(s\) \['answr'\]"):
        load_judge(j)
    (j / "judge.yaml").write_text(
        "name: ok\nkind: pointwise\nscale: {min: 0, max: 10}\nprompts: {en: p.j2}\n"
    )
    assert load_judge(j).name == "ok"
    with pytest.raises(HarnessError, match="not found.*reference-0-100"):
        load_judge("no-such-judge")


def test_import_is_light():
    import subprocess

    code = "import sys, harness.judging; print(sorted(m for m in ('ollama', 'openai', 'httpx', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
