"""What the served-model engines share: the server-side chat format, requests sent concurrently
with retries and an optional per-run cache, the probe cache, and the log-prob arithmetic.

A served model is a model name on a server someone else runs: an OpenAI-compatible server
(vLLM, SGLang, TGI, llama.cpp; ``served_openai.py``) or Ollama (``served_ollama.py``). Each
engine sends one HTTP request per prompt, ``concurrency`` at a time (the server batches them),
retries transport failures (HTTP 5xx / 429, a refused or dropped connection, a timeout) with
the judge's backoff policy (``harness.judging.asker.with_retries``) and raises a one-line
``HarnessError`` when the server stays down. With a ``cache_dir`` every answered request is kept
as one file (the judge cache's format), so a unit that was interrupted does not ask again.

Prompting: ``ServerChatFormat`` renders an (instruction, input, system) triple or a conversation
as a JSON list of chat messages, and the engine sends it to the chat API, where the server
applies the model's own template. Any other format (or None) means the prompt text was
rendered here and goes to the raw completions API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.engine import Generation
from harness.errors import HarnessError
from harness.models.prompts import cut_at_stops, drop_partial_char

log = logging.getLogger("harness.engine")

SERVER_CHAT = "server-chat"
GREEDY_TOLERANCE = 1e-6  # a continuation token within this of the top log-prob counts as greedy


class TransientServerError(Exception):
    """A request failed in transport (5xx, 429, refused or dropped connection, timeout): retry."""


class ServerRequestError(Exception):
    """The server refused a request; sending it again will not help (400, 401, 404)."""


# --------------------------------------------------------------------------------------
# the server-side chat format
# --------------------------------------------------------------------------------------


class ServerChatFormat:
    """A prompt format whose "prompt" is a JSON list of chat messages: the server applies the
    model's chat template (OpenAI ``/v1/chat/completions``, Ollama ``/api/chat``). Duck-types
    ``harness.models.prompts.PromptFormat`` as the stages use it."""

    name = SERVER_CHAT
    end_token = None
    completion_prefix = ""
    source = None

    def __init__(self, where: str = ""):
        self.where = where  # "openai http://host/v1 model-name": which server holds the template
        self.template = f"(the chat template applied by the server: {where or 'unknown'})"
        self.stop_strings: list[str] = []  # the server stops at the end of the assistant turn
        self.response_headers: list[str] = []
        self.prompt_headers: list[str] = []

    @property
    def template_hash(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()[:12]

    def render(self, instruction: str, input: str = "", system: str | None = None) -> str:
        user = instruction + (f"\n\n{input}" if input else "")
        return _dump(([{"role": "system", "content": system}] if system else [])
                     + [{"role": "user", "content": user}])

    def render_messages(self, messages: list[dict[str, Any]], system: str | None = None) -> str:
        own = next((m.get("content") for m in messages if m.get("role") == "system"), None)
        system = own or system
        rest = [{"role": str(m.get("role")), "content": str(m.get("content", ""))}
                for m in messages if m.get("role") != "system"]
        return _dump(([{"role": "system", "content": system}] if system else []) + rest)

    def __repr__(self) -> str:
        return f"ServerChatFormat({self.where!r})"


def _dump(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, ensure_ascii=False)


def is_server_chat(fmt: Any) -> bool:
    return getattr(fmt, "name", None) == SERVER_CHAT


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """The messages of a prompt rendered by ``ServerChatFormat``."""
    try:
        msgs = json.loads(prompt)
    except ValueError:
        msgs = None
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m for m in msgs):
        raise HarnessError("a prompt for the server's chat API is not a JSON list of chat messages "
                           f"({prompt[:60]!r})", fix="Render prompts with the engine's chat_format().")
    return msgs


def looks_like_chat(prompt: str) -> bool:
    """Whether a prompt is a ServerChatFormat rendering (to refuse scoring it as plain text)."""
    if not prompt.startswith('[{"role": '):
        return False
    try:
        chat_messages(prompt)
    except HarnessError:
        return False
    return True


# --------------------------------------------------------------------------------------
# generations
# --------------------------------------------------------------------------------------


def stop_list(fmt: Any, stop: Sequence[str]) -> list[str]:
    """The format's stop strings (a format rendered here) and the caller's, once each."""
    own = [] if fmt is None or is_server_chat(fmt) else list(fmt.stop_strings)
    return [s for s in dict.fromkeys([*own, *stop]) if s]


def make_generation(reply: dict[str, Any], fmt: Any, stops: list[str]) -> Generation:
    """A Generation from a normalised reply ``{text, finish_reason, stop_reason, n_tokens}``:
    the answer cut as the HF engine cuts it (``extract_response`` for a format rendered here)."""
    from harness.models.prompts import extract_response

    raw = str(reply.get("text") or "")
    if reply.get("finish_reason") == "length":
        finish = "length"
        raw = drop_partial_char(raw)  # a server that decoded a character cut by the limit
    elif isinstance(reply.get("stop_reason"), str) or any(s in raw for s in stops):
        finish = "stop"
    else:
        finish = "eos"  # the server ended the answer (EOS, or a stop it does not name)
    if fmt is not None and not is_server_chat(fmt):
        text = extract_response(raw, fmt, stop=stops)
    else:
        text = cut_at_stops(raw, stops)
    return Generation(text=text.strip(), raw=raw, n_tokens=int(reply.get("n_tokens") or 0),
                      truncated=finish == "length", finish=finish)


# --------------------------------------------------------------------------------------
# log-prob arithmetic over echoed prompts (pure)
# --------------------------------------------------------------------------------------


def echo_scores(token_logprobs: Sequence[float | None], top_logprobs: Sequence[dict | None] | None,
                n_prompt: int) -> dict[str, list]:
    """The prompt part of an echoed completion: ``{"lp": [...], "best": [...]}`` per prompt token
    (``best``: the highest log-prob offered at that position, None where none was)."""
    lps = list(token_logprobs)[:n_prompt]
    tops = list(top_logprobs or [])[:n_prompt]
    best = [max(d.values()) if isinstance(d, dict) and d else None for d in tops]
    best += [None] * (len(lps) - len(best))
    return {"lp": [None if v is None else float(v) for v in lps], "best": best}


def sum_last(scores: dict[str, list], n: int) -> tuple[float, bool]:
    """(sum of the last ``n`` log-probs, each of them the greedy choice). ``n == 0`` -> (0, True),
    as the HF engine. A position without a log-prob (the prompt's first token) cannot be scored."""
    if n <= 0:
        return 0.0, True
    lps, best = scores["lp"][-n:], scores["best"][-n:]
    if len(lps) < n or any(v is None for v in lps):
        raise HarnessError(f"the server gave no log-prob for {sum(v is None for v in lps) + n - len(lps)} "
                           f"of the {n} tokens to score (the first token of a text has none)",
                           fix="Give the engine bos_text (the model's BOS token as text) or score "
                               "with a context.")
    greedy = all(b is None or lp >= b - GREEDY_TOLERANCE for lp, b in zip(lps, best))
    return float(sum(lps)), greedy


def lm_eval_split(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's rule: the context's trailing whitespace belongs to the continuation."""
    n = len(context) - len(context.rstrip())
    if n:
        return context[:-n], context[-n:] + continuation
    return context, continuation


# --------------------------------------------------------------------------------------
# requests: concurrency, retries, cache
# --------------------------------------------------------------------------------------

_PROBES: dict[tuple, dict[str, Any]] = {}  # (backend, url, model) -> what the probe found
_PROBES_LOCK = threading.Lock()


class _Cancelled(Exception):
    """A request not sent because another one of the same call already failed for good."""


class ServedRequests:
    """Sends normalised requests through ``call`` (one HTTP request each), ``concurrency`` at a
    time, retrying transport failures; answers come back in order. Identical requests in one
    batch are sent once. With ``cache_dir``, answers are kept on disk (JudgeCache files) under a
    key of everything that decides them (``identity`` + the request)."""

    def __init__(self, call: Callable[[dict], dict], describe: str, *, concurrency: int, max_retries: int,
                 backoff: float, max_backoff: float, cache_dir: str | Path | None = None):
        if int(concurrency) < 1 or int(max_retries) < 0:
            raise HarnessError(f"{describe}: concurrency must be >= 1 and max_retries >= 0 "
                               f"(got {concurrency}, {max_retries})")
        self.call, self.describe = call, describe
        self.concurrency, self.max_retries = int(concurrency), int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.cache = None
        if cache_dir is not None:
            from harness.judging.cache import JudgeCache

            self.cache = JudgeCache(cache_dir)
        self.sent = 0  # HTTP requests made (tries included)
        self._lock = threading.Lock()

    def _key(self, identity: dict, request: dict) -> str:
        canon = json.dumps({"identity": identity, "request": request}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def one(self, request: dict, identity: dict | None = None) -> dict:
        from harness.judging.asker import with_retries

        key = None
        if self.cache is not None and identity is not None:
            key = self._key(identity, request)
            hit = self.cache.get(key)
            if hit is not None:
                return hit["value"]

        def once() -> dict:
            with self._lock:
                self.sent += 1
            return self.call(request)

        try:
            answer, _ = with_retries(once, retries=self.max_retries, backoff=self.backoff,
                                     max_backoff=self.max_backoff, transient=(TransientServerError,))
        except TransientServerError as e:
            raise HarnessError(f"{self.describe} failed {self.max_retries + 1} times in a row ({e})",
                               fix="Check that the server is running and reachable, then rerun (add "
                                   "--resume RUN_DIR to keep finished units).") from None
        except ServerRequestError as e:
            raise HarnessError(f"{self.describe} refused a request ({e})",
                               fix="Check the model name, base_url and the request limits of the server.") from None
        if key is not None:
            self.cache.put(key, {"value": answer, "request": request})
        return answer

    def many(self, requests: list[dict], identity: dict | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """Every request's answer, in order; the first request that fails for good stops the rest
        (nothing more is sent) and its error is raised."""
        from harness.judging.asker import map_concurrently

        keys = [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in requests]
        unique = list(dict.fromkeys(keys))
        by_key = {k: r for k, r in zip(keys, requests)}
        failed: list[BaseException] = []
        stop = threading.Event()

        def ask(k: str) -> dict:
            if stop.is_set():
                raise _Cancelled
            try:
                return self.one(by_key[k], identity)
            except BaseException as e:
                with self._lock:
                    failed.append(e)
                stop.set()
                raise

        total = len(requests)
        scaled = None if progress is None else (
            lambda done, n: progress(total if done == n else done * total // max(1, n), total))
        try:
            answers = map_concurrently(unique, ask, self.concurrency, scaled)
        except BaseException:
            if failed:
                raise failed[0] from None
            raise
        found = dict(zip(unique, answers))
        return [found[k] for k in keys]


def probe_once(key: tuple, run: Callable[[], dict[str, Any]], refresh: bool = False) -> dict[str, Any]:
    """``run()`` once per ``key`` (backend, url, model) in this process; failures are not kept."""
    with _PROBES_LOCK:
        if not refresh and key in _PROBES:
            return _PROBES[key]
    found = run()
    with _PROBES_LOCK:
        _PROBES[key] = found
    return found


# --------------------------------------------------------------------------------------
# what both served engines do the same way
# --------------------------------------------------------------------------------------


class ServedEngine:
    """The Engine protocol over a server: generation for every backend, capabilities from a probe
    made once per (backend, url, model) in this process. Subclasses send the requests
    (``_call``), build them (``_generation_request``) and probe (``_probe``)."""

    backend = ""
    url = ""

    def __init__(self, model: str, url: str, *, concurrency: int, timeout: float, max_retries: int,
                 cache_dir: str | Path | None, backoff: float, max_backoff: float):
        if not model or not str(model).strip():
            raise HarnessError(f"a served model ({self.backend}) names no model",
                               fix="Set `model:` to a name the server serves.")
        self.model = str(model).strip()
        self.url = url
        self.timeout = float(timeout)
        self.requests = ServedRequests(self._call, f"the {self.backend} server at {url} (model {self.model!r})",
                                       concurrency=concurrency, max_retries=max_retries, backoff=backoff,
                                       max_backoff=max_backoff, cache_dir=cache_dir)
        self._apis: set[str] = set()

    # -- subclasses -------------------------------------------------------------------
    def _call(self, request: dict) -> dict:
        raise NotImplementedError

    def _probe(self) -> dict[str, Any]:
        raise NotImplementedError

    def _generation_request(self, prompt: str, chat: bool, params: dict[str, Any]) -> dict:
        raise NotImplementedError

    # -- the probe --------------------------------------------------------------------
    def probe(self, refresh: bool = False) -> dict[str, Any]:
        """What the server is and can do, found once per (backend, url, model) in this process:
        ``served`` models, ``server_version``, ``prompt_logprobs`` (bool) and ``why``, ... Raises
        a one-line HarnessError when the server is down, refuses the key or lacks the model."""
        return probe_once((self.backend, self.url, self.model), self._probe, refresh)

    def check(self) -> None:
        """Raise a one-line HarnessError (what, where, the fix) when this model cannot be used."""
        self.probe()

    @property
    def info(self):
        from harness.engine import GENERATE, LOGLIKELIHOOD, EngineInfo
        from harness.env import package_version

        found = self.probe()
        caps = {GENERATE} | ({LOGLIKELIHOOD} if found.get("prompt_logprobs") else set())
        api = "+".join(sorted(self._apis)) or None
        return EngineInfo(self.backend, found.get("server_version") or package_version(self.backend) or "",
                          frozenset(caps), details={self._url_key: self.url, "model": self.model, "api": api,
                                                    "probe": found})

    _url_key = "base_url"

    def identity(self) -> dict[str, Any]:
        """What decides an answer besides the request (part of the cache key)."""
        found = self.probe()
        return {"backend": self.backend, "url": self.url, "model": self.model,
                "model_id": found.get("model_id"), "server_version": found.get("server_version")}

    def chat_format(self) -> ServerChatFormat:
        """The format that leaves the chat template to the server (the chat API)."""
        return ServerChatFormat(f"{self.backend} {self.url} {self.model}")

    # -- the Engine protocol ----------------------------------------------------------
    def generate(self, prompts: Sequence[str], *, fmt: Any = None, max_new_tokens: int = 128,
                 temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> list[Generation]:
        """Continuations of ``prompts``: through the chat API when ``fmt`` is a ServerChatFormat
        (each prompt a JSON list of messages), else the completions API with the format's stop
        strings (``fmt`` rendered the prompt here, or None: raw text). Greedy unless
        ``temperature`` > 0; the seed is always sent."""
        chat = is_server_chat(fmt)
        stops = stop_list(fmt, stop)
        params: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature),
                                  "seed": int(seed), "stop": stops}
        if temperature > 0 and top_p < 1:
            params["top_p"] = float(top_p)
        reqs = [self._generation_request(p, chat, params) for p in prompts]
        self._apis.add("chat" if chat else "completions")
        replies = self.requests.many(reqs, self.identity(), progress)
        return [make_generation(r, fmt, stops) for r in replies]

    def refuse_scoring(self, what: str) -> HarnessError:
        found = self.probe()
        return HarnessError(f"{what} needs prompt log-probs, and the {self.backend} server at {self.url} "
                            f"gives none for model {self.model!r} ({found.get('why', 'not offered')})",
                            fix="Serve the model with vLLM's OpenAI server (it returns them), or drop "
                                "perplexity and multiple-choice benchmarks for this model.")

    def loglikelihood(self, requests: Sequence[tuple[str, str]],
                      progress: Callable[[int, int], None] | None = None) -> list[tuple[float, bool]]:
        raise self.refuse_scoring("loglikelihood")

    def token_nll(self, prompts: Sequence[str], targets: Sequence[str]):
        raise self.refuse_scoring("perplexity (token_nll)")

    def rolling_nll(self, texts: Sequence[str], max_length: int | None = None, stride: int | None = None):
        raise self.refuse_scoring("perplexity (rolling_nll)")
