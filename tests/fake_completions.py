"""The raw-completion side of tests/fake_judge_server.py: a toy tokenizer and language model
whose log-probs a test can compute by hand, and the answers of OpenAI ``/v1/completions``
(with ``echo`` + ``logprobs``) and Ollama ``/api/generate``.

Toy tokenizer: a token is a word with the whitespace before it (``"Paris is"`` -> ``["Paris",
" is"]``); a server that adds BOS puts ``"<s>"`` first. Toy model: every position offers the
top token ``" a"`` at log-prob -0.1; any other token ``t`` has log-prob
``-0.1 * len(t.strip()) - 0.05`` (so only ``" a"`` is ever greedy). The first token has no
log-prob (None), as on real servers.
"""

from __future__ import annotations

import re
import time

BOS = "<s>"
TOP = " a"
TOP_LP = -0.1


def tokenize(text: str, adds_bos: bool) -> list[str]:
    """Words with the whitespace before them; a "<s>" written at the start is the BOS token."""
    if text.startswith(BOS):
        return [BOS] + tokenize(text[len(BOS):], False)
    return ([BOS] if adds_bos else []) + re.findall(r"\s*\S+|\s+$", text)


def token_logprob(token: str) -> float:
    return TOP_LP if token == TOP else round(-0.1 * len(token.strip()) - 0.05, 6)


def hand_sum(words: list[str]) -> float:
    """What a test expects: the toy log-prob summed over ``words`` (tokens)."""
    return sum(token_logprob(w) for w in words)


def cut(text: str, stops: list[str], max_tokens: int | None) -> tuple[str, str, str | None, int]:
    """(text, finish_reason, stop_reason, n_tokens) of a reply under stop strings and max_tokens."""
    stop_reason = None
    hits = [(text.find(s), s) for s in stops if s and s in text]
    if hits:
        pos, stop_reason = min(hits)
        text = text[:pos]
    tokens = tokenize(text, False)
    if max_tokens is not None and len(tokens) > max_tokens:
        return "".join(tokens[:max_tokens]), "length", None, max_tokens
    return text, "stop", stop_reason, len(tokens) + (0 if stop_reason else 1)  # + EOS


def _logprobs(tokens: list[str], first_none: bool, offset0: int = 0) -> dict:
    lps = [None if (i == 0 and first_none) else token_logprob(t) for i, t in enumerate(tokens)]
    top = [None if lp is None else {TOP: TOP_LP, t: lp} for t, lp in zip(tokens, lps)]
    offsets, pos = [], offset0
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": top, "text_offset": offsets}


def openai_completion(payload: dict, reply: str, *, prompt_logprobs: bool, adds_bos: bool) -> dict:
    """The answer of ``/v1/completions`` to ``payload`` whose generated text would be ``reply``.
    ``prompt_logprobs=False`` answers as llama.cpp does: ``echo`` is ignored, log-probs cover the
    generated tokens only."""
    prompt = str(payload.get("prompt", ""))
    max_tokens = payload.get("max_tokens", 16)
    stops = payload.get("stop") or []
    stops = [stops] if isinstance(stops, str) else list(stops)
    echo = bool(payload.get("echo")) and prompt_logprobs
    if echo and max_tokens in (0, 1):
        text, finish, stop_reason, n_gen = TOP, "length", None, max_tokens
        generated = [TOP] if max_tokens else []
    else:
        text, finish, stop_reason, n_gen = cut(reply, stops, max_tokens)
        generated = tokenize(text, False)
    p_tokens = tokenize(prompt, adds_bos)
    choice = {"index": 0, "text": (prompt + text) if echo else text, "finish_reason": finish,
              "stop_reason": stop_reason, "logprobs": None}
    if payload.get("logprobs") is not None:
        if echo:
            choice["logprobs"] = _logprobs(p_tokens + generated, True, -len(BOS) if adds_bos else 0)
        else:
            choice["logprobs"] = _logprobs(generated, False)
    return {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
            "model": payload.get("model", ""), "choices": [choice],
            "usage": {"prompt_tokens": len(p_tokens), "completion_tokens": n_gen,
                      "total_tokens": len(p_tokens) + n_gen}}


def ollama_generate(payload: dict, reply: str) -> dict:
    """The answer of ``/api/generate`` (non-streaming)."""
    options = payload.get("options") or {}
    stops = options.get("stop") or []
    text, finish, _, n_gen = cut(reply, list(stops), options.get("num_predict"))
    return {"model": payload.get("model", ""), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "response": text, "done": True, "done_reason": finish, "eval_count": n_gen,
            "prompt_eval_count": len(tokenize(str(payload.get("prompt", "")), False))}
