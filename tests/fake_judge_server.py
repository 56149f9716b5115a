"""A scriptable stand-in for an Ollama server and an OpenAI-compatible server, on 127.0.0.1.

Speaks ``GET /api/tags``, ``GET /api/version``, ``POST /api/chat``, ``POST /api/generate``
(Ollama) and ``GET /v1/models``, ``GET /version``, ``POST /v1/chat/completions``,
``POST /v1/completions`` (OpenAI; ``echo`` + ``logprobs`` from a toy model, see
tests/fake_completions.py; ``prompt_logprobs=False`` answers as llama.cpp, without prompt
log-probs), so the real ``ollama`` and ``openai`` clients can be tested against it. Each
chat or completion request is answered by an :class:`Action` (for a completion, the text the
model generates; stop strings and max_tokens are applied to it):

* ``Action.json({...})``  the reply content is that object as JSON (clean structured reply)
* ``Action.text("...")``  the reply content is that text (prose, garbage, "85")
* ``Action.status(500)``  an HTTP error with a JSON error body
* ``Action.drop()``       the connection is closed without any response
* ``Action.tokens([(token, logprob, [(alternative, logprob), ...]), ...])``  the reply is the
  tokens joined; a request that asks for log-probs (OpenAI ``logprobs: true`` + ``top_logprobs``,
  Ollama ``logprobs: true``) gets them back, at most ``top_logprobs`` alternatives per token
* ``delay=`` on any of them: sleep that long first (slow replies, timeouts)

Actions come from a FIFO queue (``server.push(...)``) and, when it is empty, from
``server.responder(api, payload) -> Action`` (default: ``default_action``), so scripts can be
fixed sequences or depend on the prompt (safe under concurrency). ``server.count(path)``
and ``server.requests`` record what arrived; ``server.max_in_flight`` the most requests answered at once.
``server.refuse_logprobs = True`` answers any request that asks for log-probs with HTTP 400.

    with FakeJudgeServer(models=["llama3:latest"]) as srv:
        srv.push(Action.status(500), Action.json({"score": 85, "rationale": "ok"}))
        ollama.Client(host=srv.url).chat(...)
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fake_completions  # tests/ is on sys.path (conftest, bench, or run as a script)


@dataclass
class Action:
    kind: str  # json | text | status | drop
    body: Any = None
    code: int = 200
    delay: float = 0.0
    logprobs: list | None = None  # [(token, logprob, [(alternative, logprob), ...]), ...]

    @classmethod
    def json(cls, obj: dict, delay: float = 0.0) -> Action:
        return cls("text", json.dumps(obj, ensure_ascii=False), 200, delay)

    @classmethod
    def text(cls, text: str, delay: float = 0.0) -> Action:
        return cls("text", text, 200, delay)

    @classmethod
    def tokens(cls, tokens: list, delay: float = 0.0) -> Action:
        return cls("text", "".join(t for t, _, _ in tokens), 200, delay, [tuple(t) for t in tokens])

    @classmethod
    def status(cls, code: int = 500, message: str = "internal error", delay: float = 0.0) -> Action:
        return cls("status", message, code, delay)

    @classmethod
    def drop(cls, delay: float = 0.0) -> Action:
        return cls("drop", None, 0, delay)


def last_user_text(payload: dict) -> str:
    msgs = payload.get("messages") or []
    for m in reversed(msgs):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def default_action(api: str, payload: dict) -> Action:
    """Answer from markers in the prompt: ``SCORE=<n>`` -> {"score": n}; ``PREFER=<text>``
    -> the answer containing <text> wins (whichever position it is in); else score 50.
    A raw completion (api "completions" / "generate") answers "reply to: <prompt's last 20 chars>"."""
    if api in ("completions", "generate"):
        return Action.text(f"reply to: {str(payload.get('prompt', ''))[-20:]}")
    text = last_user_text(payload)
    m = re.search(r"SCORE=(\d+)", text)
    if m:
        return Action.json({"rationale": f"marker {m.group(1)}", "score": int(m.group(1))})
    m = re.search(r"PREFER=(\w+)", text)
    if m:
        tag = m.group(1)
        a = re.search(r"Assistant A's Answer\]\n(.*?)\n\[The End of Assistant A", text, re.DOTALL)
        b = re.search(r"Assistant B's Answer\]\n(.*?)\n\[The End of Assistant B", text, re.DOTALL)
        if a and tag in a.group(1):
            return Action.json({"rationale": "A has the tag", "winner": "A"})
        if b and tag in b.group(1):
            return Action.json({"rationale": "B has the tag", "winner": "B"})
        return Action.json({"rationale": "neither", "winner": "tie"})
    return Action.json({"rationale": "default", "score": 50})


class FakeJudgeServer:
    def __init__(
        self,
        models: list[str] | None = None,
        responder: Callable[[str, dict], Action] | None = None,
        latency: float = 0.0,
        prompt_logprobs: bool = True,
        adds_bos: bool = True,
        version: str | None = "0.0.0-fake",
        api_key: str | None = None,
    ):
        self.models = list(models) if models is not None else ["llama3:latest", "judge-model"]
        self.responder = responder or default_action
        self.latency = latency  # added to every chat request
        self.prompt_logprobs = prompt_logprobs  # /v1/completions echoes prompt log-probs (vLLM) or not
        self.adds_bos = adds_bos  # the toy tokenizer puts "<s>" before every prompt
        self.version = version  # GET /version and /api/version (None: 404)
        self.api_key = api_key  # when set, /v1/* without "Authorization: Bearer <it>" gets 401
        self.in_flight = 0
        self.max_in_flight = 0
        self.refuse_logprobs = False
        self._queue: deque[Action] = deque()
        self._lock = threading.Lock()
        self.requests: list[tuple[str, dict]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------
    def push(self, *actions: Action) -> None:
        with self._lock:
            self._queue.extend(actions)

    def next_action(self, api: str, payload: dict) -> Action:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.responder(api, payload)

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if path is None or p == path)

    def chat_count(self) -> int:
        return self.count("/api/chat") + self.count("/v1/chat/completions")

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    # -- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeJudgeServer:
        server = self

        class Handler(_Handler):
            fake = server

        class HTTPD(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 128
            allow_reuse_address = True

        self._httpd = HTTPD(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeJudgeServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    fake: FakeJudgeServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send_json(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, payload: dict) -> None:
        with self.fake._lock:
            self.fake.requests.append((self.path, payload))

    def _refused_key(self) -> bool:
        key = self.fake.api_key
        if key and self.path.startswith("/v1/") and self.headers.get("Authorization") != f"Bearer {key}":
            self._send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                            "code": "invalid_api_key"}})
            return True
        return False

    def do_GET(self) -> None:
        if self.path == "/_fake/stats":  # for a server run in another process (bench)
            with self.fake._lock:
                paths = [p for p, _ in self.fake.requests]
            self._send_json(
                200,
                {"chat": sum(p in ("/api/chat", "/v1/chat/completions") for p in paths), "total": len(paths)},
            )
            return
        self._record({})
        if self._refused_key():
            return
        try:
            if self.path in ("/version", "/api/version"):
                if self.fake.version is None:
                    self._send_json(404, {"error": "no version"})
                else:
                    self._send_json(200, {"version": self.fake.version})
            elif self.path == "/api/tags":
                self._send_json(200, {"models": [_ollama_model(m) for m in self.fake.models]})
            elif self.path in ("/v1/models", "/models"):
                self._send_json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                            for m in self.fake.models
                        ],
                    },
                )
            else:
                self._send_json(404, {"error": f"no route {self.path}"})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = {}
        self._record(payload)
        if self._refused_key():
            return
        if self.path == "/api/chat":
            api = "ollama"
        elif self.path in ("/v1/chat/completions", "/chat/completions"):
            api = "openai"
        elif self.path in ("/v1/completions", "/completions"):
            api = "completions"
        elif self.path == "/api/generate":
            api = "generate"
        else:
            self._send_json(404, {"error": f"no route {self.path}"})
            return
        model = payload.get("model", "")
        if model not in self.fake.models and f"{model}:latest" not in self.fake.models:
            self._send_json(404, {"error": f"model '{model}' not found"})
            return
        wants = bool(payload.get("logprobs"))
        if wants and self.fake.refuse_logprobs:
            msg = "logprobs are not supported by this server"
            self._send_json(400, {"error": msg} if api == "ollama" else
                            {"error": {"message": msg, "type": "invalid_request_error"}})
            return
        action = self.fake.next_action(api, payload)
        k = int(payload.get("top_logprobs") or 0)
        lps = _logprobs(action.logprobs, k, api) if wants and action.logprobs else None
        delay = action.delay + self.fake.latency
        with self.fake._lock:
            self.fake.in_flight += 1
            self.fake.max_in_flight = max(self.fake.max_in_flight, self.fake.in_flight)
        try:
            self._answer(api, model, payload, action, delay, lps)
        finally:
            with self.fake._lock:
                self.fake.in_flight -= 1

    def _answer(self, api: str, model: str, payload: dict, action: Action, delay: float, lps: Any) -> None:
        try:
            if delay:
                time.sleep(delay)
            if action.kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if action.kind == "status":
                err = (
                    {"error": action.body}
                    if api == "ollama"
                    else {"error": {"message": action.body, "type": "server_error"}}
                )
                self._send_json(action.code, err)
                return
            content = str(action.body)
            if api == "completions":
                self._send_json(200, fake_completions.openai_completion(
                    payload, content, prompt_logprobs=self.fake.prompt_logprobs, adds_bos=self.fake.adds_bos))
                return
            if api == "generate":
                self._send_json(200, fake_completions.ollama_generate(payload, content))
                return
            stops = payload.get("stop") or (payload.get("options") or {}).get("stop") or []
            content = fake_completions.cut(content, [stops] if isinstance(stops, str) else list(stops), None)[0]
            if api == "ollama":
                self._send_json(
                    200,
                    {
                        "model": model,
                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "message": {"role": "assistant", "content": content},
                        "done": True,
                        "done_reason": "stop",
                        "total_duration": int(delay * 1e9),
                        "eval_count": len(content.split()),
                        **({"logprobs": lps} if lps is not None else {}),
                    },
                )
            else:
                self._send_json(
                    200,
                    {
                        "id": f"chatcmpl-{len(self.fake.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "logprobs": {"content": lps, "refusal": None} if lps is not None else None,
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) before the slow reply


def _logprobs(tokens: list, k: int, api: str) -> list[dict]:
    """The tokens in the API's log-prob shape, each with at most ``k`` alternatives."""
    extra = {"bytes": None} if api == "openai" else {}
    return [{"token": t, "logprob": lp, **extra,
             "top_logprobs": [{"token": a, "logprob": alp, **extra} for a, alp in list(alts)[:k]]}
            for t, lp, alts in tokens]


def _ollama_model(name: str) -> dict:
    return {
        "name": name,
        "model": name,
        "modified_at": "2024-01-01T00:00:00Z",
        "size": 1,
        "digest": "0" * 64,
        "details": {
            "format": "gguf",
            "family": "llama",
            "parameter_size": "8B",
            "quantization_level": "Q4_0",
        },
    }


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main() -> None:
    """Serve in the foreground (for benchmarks): prints the URL, runs until killed."""
    import argparse

    ap = argparse.ArgumentParser(description="fake Ollama/OpenAI judge server on 127.0.0.1")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--models", default="llama3:latest,judge-model")
    args = ap.parse_args()
    srv = FakeJudgeServer(models=args.models.split(","), latency=args.latency).start()
    print(srv.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
