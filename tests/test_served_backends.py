"""Served models as Engines: the real ``openai`` and ``ollama`` clients against
tests/fake_judge_server.py (toy log-probs from tests/fake_completions.py, computed by hand here)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fake_completions import hand_sum
from fake_judge_server import Action, free_port

from harness.backends.served import ServerChatFormat
from harness.backends.served_ollama import OllamaEngine
from harness.backends.served_openai import OpenAIEngine
from harness.engine import GENERATE, LOGLIKELIHOOD, Engine
from harness.errors import HarnessError

FAST = {"backoff": 0.01, "max_backoff": 0.02}
MODEL = "tiny"


def last_user(payload: dict) -> str:
    return next(m["content"] for m in reversed(payload["messages"]) if m["role"] == "user")


def echo_responder(api: str, payload: dict) -> Action:
    """Chat: "A:" + the last user message; completions: "A:" + the prompt's last word."""
    if api in ("openai", "ollama"):
        return Action.text("A:" + last_user(payload))
    return Action.text("A:" + str(payload.get("prompt", "")).split()[-1])


@pytest.fixture
def srv(fake_judge):
    return fake_judge(models=[MODEL, "sft"], responder=echo_responder)


def openai_engine(srv, **kw) -> OpenAIEngine:
    return OpenAIEngine(kw.pop("model", MODEL), srv.openai_url, **{**FAST, **kw})


def ollama_engine(srv, **kw) -> OllamaEngine:
    return OllamaEngine(kw.pop("model", MODEL), srv.url, **{**FAST, **kw})


ENGINES = {"openai": openai_engine, "ollama": ollama_engine}


def posts(srv, *paths: str) -> list[dict]:
    return [p for path, p in srv.requests if path in paths]


# ------------------------------------------------------------------ generation
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_chat_generation_sends_messages_and_greedy_settings(srv, kind):
    eng = ENGINES[kind](srv)
    assert isinstance(eng, Engine)
    fmt = eng.chat_format()
    prompts = [fmt.render("Name a colour.", system="Be brief."),
               fmt.render_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                    {"role": "user", "content": "again"}])]
    gens = eng.generate(prompts, fmt=fmt, max_new_tokens=7, seed=3)
    assert [g.text for g in gens] == ["A:Name a colour.", "A:again"]
    sent = sorted(posts(srv, "/v1/chat/completions", "/api/chat"), key=lambda p: len(p["messages"]))
    assert sent[0]["messages"] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Name a colour."}]
    assert [m["role"] for m in sent[1]["messages"]] == ["user", "assistant", "user"]
    opts = sent[0] if kind == "openai" else sent[0]["options"]
    assert opts["temperature"] == 0 and opts["seed"] == 3
    assert opts["max_tokens" if kind == "openai" else "num_predict"] == 7
    assert eng.info.details["api"] == "chat"
    assert gens[0].finish == "eos" and not gens[0].truncated


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_completions_generation_uses_the_local_format_and_its_stops(srv, kind):
    from harness.models.prompts import get_format

    eng = ENGINES[kind](srv)
    eng.check()  # the probe first: pushed actions answer the next requests
    fmt = get_format("alpaca")
    srv.push(Action.text("Paris is big.\n### Instruction: leaked"), Action.text("one two three four five six"))
    prompts = [fmt.render("Capital of France?"), fmt.render("Count.")]
    gens = eng.generate(prompts, fmt=fmt, max_new_tokens=4)
    path = "/v1/completions" if kind == "openai" else "/api/generate"
    sent = [p for p in posts(srv, path) if not p.get("echo")]
    assert sorted(p["prompt"] for p in sent) == sorted(prompts)
    stops = sent[0]["stop"] if kind == "openai" else sent[0]["options"]["stop"]
    assert stops == ["### Instruction", "### Input"]
    if kind == "ollama":
        assert all(p["raw"] is True for p in sent)
    g = {g.raw: g for g in gens}
    first = gens[0] if gens[0].text.startswith("Paris") else gens[1]
    assert first.text == "Paris is big." and first.finish == ("stop" if kind == "openai" else "eos")
    cut = gens[1] if first is gens[0] else gens[0]
    assert cut.raw == "one two three four" and cut.truncated and cut.finish == "length" and cut.n_tokens == 4
    assert len(g) == 2 and eng.info.details["api"] == "completions"


def test_completion_with_no_format_is_the_raw_continuation_cut_at_stops(srv):
    eng = openai_engine(srv)
    eng.check()
    srv.push(Action.text(" 42\n\nQuestion: next"))
    [g] = eng.generate(["Question: 6*7?\nAnswer:"], fmt=None, stop=["\n\n"])
    assert g.raw == " 42" and g.text == "42" and g.finish == "stop" and g.n_tokens == 1


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_concurrency_keeps_order(fake_judge, kind):
    srv = fake_judge(models=[MODEL], responder=echo_responder, latency=0.05)
    eng = ENGINES[kind](srv, concurrency=4)
    fmt = eng.chat_format()
    seen = []
    gens = eng.generate([fmt.render(f"item {i}") for i in range(16)], fmt=fmt,
                        progress=lambda d, n: seen.append((d, n)))
    assert [g.text for g in gens] == [f"A:item {i}" for i in range(16)]
    assert 2 <= srv.max_in_flight <= 4
    assert seen[0] == (0, 16) and seen[-1] == (16, 16)


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_retries_on_500_and_dropped_connection_then_succeeds(srv, kind):
    eng = ENGINES[kind](srv, concurrency=1)
    eng.check()
    fmt = eng.chat_format()
    srv.push(Action.status(500), Action.drop(), Action.status(429))
    [g] = eng.generate([fmt.render("ok?")], fmt=fmt)
    assert g.text == "A:ok?" and srv.chat_count() == 4 and eng.requests.sent == 4


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_a_server_that_stays_down_is_one_line_and_stops_sending(fake_judge, kind):
    down = {"now": False}
    srv = fake_judge(models=[MODEL], responder=lambda api, p: Action.status(503, "overloaded") if down["now"]
                     else echo_responder(api, p))
    eng = ENGINES[kind](srv, concurrency=2, max_retries=2)
    eng.check()
    down["now"] = True
    fmt = eng.chat_format()
    with pytest.raises(HarnessError) as e:
        eng.generate([fmt.render(f"q{i}") for i in range(20)], fmt=fmt)
    msg = str(e.value)
    assert "\n" not in msg and srv.url in msg and "3 times" in msg and "503" in msg
    assert srv.chat_count() <= 2 * 3 + 2  # the in-flight ones finish their tries; nothing new is sent


def test_a_refused_request_is_not_retried(srv):
    eng = openai_engine(srv)
    eng.check()
    srv.push(Action.status(400, "prompt too long"))
    with pytest.raises(HarnessError, match="refused a request.*HTTP 400.*prompt too long"):
        eng.generate(["x"], fmt=None)
    assert srv.count("/v1/completions") == 2  # the probe's echo, then the one refused request


# ------------------------------------------------------------------ check / probe
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_check_a_server_that_is_down(kind):
    port = free_port()
    eng = (OpenAIEngine(MODEL, f"http://127.0.0.1:{port}/v1", max_retries=0) if kind == "openai"
           else OllamaEngine(MODEL, f"127.0.0.1:{port}", max_retries=0))
    with pytest.raises(HarnessError) as e:
        eng.check()
    msg = str(e.value)
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg and "not reachable" in msg
    assert ("Start the server" in msg) if kind == "openai" else ("ollama serve" in msg)


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_check_a_model_that_is_not_served_lists_what_is(fake_judge, kind):
    srv = fake_judge(models=["llama3:latest", "sft-adapter"])
    with pytest.raises(HarnessError) as e:
        ENGINES[kind](srv, model="sft-adaptr").check()
    msg = str(e.value)
    assert "\n" not in msg and "'sft-adaptr'" in msg and "did you mean 'sft-adapter'" in msg and "llama3:latest" in msg


def test_check_a_rejected_api_key(fake_judge):
    srv = fake_judge(models=[MODEL], api_key="right")
    with pytest.raises(HarnessError, match="rejected the API key"):
        openai_engine(srv, api_key="wrong").check()
    openai_engine(srv, api_key="right").check()


def test_check_a_base_url_without_v1_says_so(srv):
    with pytest.raises(HarnessError, match="try .*/v1"):
        OpenAIEngine(MODEL, srv.url + "/api").check()


def test_probe_runs_once_per_server_and_model(srv):
    a, b = openai_engine(srv), openai_engine(srv, concurrency=2)
    assert a.probe() is b.probe()
    a.check()
    _ = b.info
    assert srv.count("/v1/models") == 1 and srv.count("/version") == 1
    openai_engine(srv, model="sft").check()
    assert srv.count("/v1/models") == 2


def test_info_of_a_vllm_like_server(srv):
    info = openai_engine(srv).info
    assert info.backend == "openai" and info.version == "0.0.0-fake"
    assert info.capabilities == {GENERATE, LOGLIKELIHOOD}
    assert info.details["base_url"] == srv.openai_url and info.details["model"] == MODEL
    assert info.details["probe"]["prompt_logprobs"] is True and info.details["probe"]["adds_bos"] is True


def test_without_prompt_logprobs_scoring_is_refused(fake_judge):
    srv = fake_judge(models=[MODEL], prompt_logprobs=False, version=None)  # llama.cpp-like
    eng = openai_engine(srv)
    info = eng.info
    assert info.capabilities == {GENERATE} and info.version  # the client's version when the server has none
    for call in (lambda: eng.loglikelihood([("a", " b")]), lambda: eng.token_nll(["a"], [" b"]),
                 lambda: eng.rolling_nll(["a b"])):
        with pytest.raises(HarnessError) as e:
            call()
        assert "prompt log-probs" in str(e.value) and "\n" not in str(e.value)
    n = srv.count("/v1/completions")
    assert n == 1  # the probe only: nothing was scored


def test_ollama_is_generation_only(srv):
    eng = ollama_engine(srv)
    info = eng.info
    assert info.capabilities == {GENERATE} and info.details["host"] == srv.url
    assert info.details["probe"]["model_id"] == {"digest": "0" * 64}
    with pytest.raises(HarnessError, match="needs prompt log-probs.*Ollama's API"):
        eng.loglikelihood([("a", " b")])
    with pytest.raises(HarnessError, match="prompt log-probs"):
        eng.rolling_nll(["a b"])


# ------------------------------------------------------------------ log-prob arithmetic
def test_loglikelihood_sums_the_continuation_tokens(srv):
    eng = openai_engine(srv)
    out = eng.loglikelihood([("The capital is", " Paris"), ("The capital is", " a"),
                             ("Answer: ", "yes no"), ("The capital is", " a Paris")])
    assert out[0] == (pytest.approx(hand_sum([" Paris"])), False)      # -0.55
    assert out[1] == (pytest.approx(-0.1), True)                         # the toy model's top token
    assert out[2] == (pytest.approx(hand_sum([" yes", " no"])), False)  # lm-eval moves the space
    assert out[3] == (pytest.approx(-0.1 + hand_sum([" Paris"])), False)
    # the shared context is echoed once for its token count
    echoes = [p["prompt"] for p in posts(srv, "/v1/completions") if p.get("echo")]
    assert echoes.count("The capital is") == 1 and "Answer:" in echoes


def test_token_nll_and_rolling_nll(srv):
    eng = openai_engine(srv)
    [nll] = eng.token_nll(["Q: hi"], [" a bb"])
    assert nll.nll_sum == pytest.approx(-hand_sum([" a", " bb"])) and nll.n_tokens == 2 and nll.n_bytes == 5
    [r] = eng.rolling_nll(["Hello big world"])  # the server adds BOS: every word is scored
    assert r.nll_sum == pytest.approx(-hand_sum(["Hello", " big", " world"])) and r.n_tokens == 3


def test_a_server_without_bos_scores_from_the_second_token_or_with_bos_text(fake_judge):
    srv = fake_judge(models=[MODEL], adds_bos=False)
    eng = openai_engine(srv)
    assert eng.probe()["adds_bos"] is False
    [r] = eng.rolling_nll(["Hello big world"])
    assert r.nll_sum == pytest.approx(-hand_sum([" big", " world"])) and r.n_tokens == 2
    with pytest.raises(HarnessError, match="bos_text"):
        eng.loglikelihood([("", "Hello")])
    with_bos = openai_engine(srv, bos_text="<s>")
    [r] = with_bos.rolling_nll(["Hello big world"])
    assert r.nll_sum == pytest.approx(-hand_sum(["Hello", " big", " world"])) and r.n_tokens == 3
    assert with_bos.loglikelihood([("", "Hello big")]) == [(pytest.approx(hand_sum(["Hello", " big"])), False)]


def test_rolling_nll_refuses_a_text_longer_than_the_window(srv):
    with pytest.raises(HarnessError, match="longer than the window of 2 tokens"):
        openai_engine(srv).rolling_nll(["one two three"], max_length=2)


def test_scoring_a_chat_prompt_is_refused(srv):
    eng = openai_engine(srv)
    prompt = eng.chat_format().render("What is 2+2?")
    with pytest.raises(HarnessError, match="prompt_format"):
        eng.token_nll([prompt], [" 4"])


# ------------------------------------------------------------------ cache, formats, lm-eval
def test_an_interrupted_call_does_not_ask_answered_prompts_again(srv, tmp_path):
    eng = openai_engine(srv, concurrency=1, cache_dir=tmp_path / "cache")
    eng.check()
    prompts = [f"q{i}" for i in range(5)]
    srv.push(Action.text("r0"), Action.text("r1"), Action.status(400, "bad"))
    with pytest.raises(HarnessError):
        eng.generate(prompts, fmt=None)
    srv.reset()
    gens = eng.generate(prompts, fmt=None)
    assert [g.raw for g in gens[:2]] == ["r0", "r1"]
    assert sorted(p["prompt"] for p in posts(srv, "/v1/completions")) == ["q2", "q3", "q4"]
    other_seed = eng.generate(prompts[:1], fmt=None, seed=1)
    assert other_seed[0].raw == "A:q0"  # the seed is part of the key


def test_server_chat_format_duck_types_a_prompt_format():
    fmt = ServerChatFormat("openai http://x/v1 tiny")
    assert fmt.name == "server-chat" and fmt.stop_strings == [] and len(fmt.template_hash) == 12
    assert json.loads(fmt.render("Do it", "data")) == [{"role": "user", "content": "Do it\n\ndata"}]
    msgs = [{"role": "system", "content": "own"}, {"role": "user", "content": "u"}]
    assert json.loads(fmt.render_messages(msgs, system="default"))[0] == {"role": "system", "content": "own"}
    assert ServerChatFormat("b").template_hash != fmt.template_hash


def test_engine_lm_over_a_served_model(srv):
    from harness.benchmarks.engine_lm import EngineLM

    eng = openai_engine(srv)
    lm = EngineLM(eng, chat_format=eng.chat_format(), name="served")
    req = [SimpleNamespace(args=("The capital is", " Paris")), SimpleNamespace(args=("The capital is", " a"))]
    assert lm.loglikelihood(req) == [(pytest.approx(-0.55), False), (pytest.approx(-0.1), True)]
    prompt = lm.apply_chat_template([{"role": "user", "content": "2+2?"}])
    [out] = lm.generate_until([SimpleNamespace(args=(prompt, {"until": ["\n"], "max_gen_toks": 5}))])
    assert out == "A:2+2?" and posts(srv, "/v1/chat/completions")[-1]["max_tokens"] == 5


def test_engine_lm_refuses_to_continue_an_assistant_message_through_a_chat_api(srv):
    from harness.benchmarks.engine_lm import EngineLM

    eng = openai_engine(srv)
    lm = EngineLM(eng, chat_format=eng.chat_format(), name="served")
    with pytest.raises(HarnessError, match="gen_prefix"):
        lm.apply_chat_template([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A:"}],
                               add_generation_prompt=False)
