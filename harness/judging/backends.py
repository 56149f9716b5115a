"""Judge backends behind one interface: ``check()`` then ``complete(messages, schema, seed)``.

* ``ollama:<model>``  the official ``ollama`` client against an Ollama server
  (host from options, ``OLLAMA_HOST``, or http://localhost:11434); ``format=`` a JSON schema.
* ``openai:<model>``  the official ``openai`` client against any OpenAI-compatible server
  (``base_url``/``api_key`` from options or ``OPENAI_BASE_URL``/``OPENAI_API_KEY``);
  ``response_format`` json_schema (default), json_object, or none.
* ``hf:<model spec>`` an in-process model (harness/judging/inprocess.py).

A backend that can also give token log-probabilities returns them from ``reply()`` (a
:class:`Reply`); the asker then reads the verdict from them (harness/judging/logprob.py).
Ollama and OpenAI-compatible servers are asked for ``top_logprobs`` (option ``top_logprobs``,
default 20; ``scoring: text`` turns it off); a server that ignores the request, or refuses it
(HTTP 400/422: asked once more without it, and not again), leaves the reply to the text parser.

Transport failures that are worth retrying (HTTP 5xx/429, connection refused or dropped,
timeouts) raise :class:`TransientJudgeError`; anything else a backend cannot do raises
:class:`JudgeRequestError`. The retry/backoff policy lives in ``asker.py``.
Heavy client imports happen inside the methods.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from harness.errors import HarnessError

from .protocol import (
    JudgeBackend,
    JudgeRequestError,
    Messages,
    Reply,
    TransientJudgeError,
    decoding_options,
)

__all__ = [
    "JudgeBackend",
    "JudgeRequestError",
    "OllamaBackend",
    "OpenAIBackend",
    "Reply",
    "TransientJudgeError",
    "make_backend",
    "parse_backend_spec",
]

def _top_logprobs(options: dict[str, Any]) -> int:
    """How many alternatives per token a server is asked for (0: no log-probs)."""
    scoring = str(options.get("scoring", "auto"))
    if scoring not in ("auto", "text"):
        raise HarnessError(f"judge option scoring={scoring!r} is not supported", fix="Use auto or text.")
    k = int(options.get("top_logprobs", 20))
    if not 0 <= k <= 20:
        raise HarnessError(f"judge option top_logprobs={k} is out of range", fix="Use 0 to 20.")
    return 0 if scoring == "text" else k


def _refuses_logprobs(code: int | None, message: str) -> bool:
    return code in (400, 422) and "logprob" in message.lower()


# --------------------------------------------------------------------------------------
# Ollama
# --------------------------------------------------------------------------------------


def _display_host(host: str) -> str:
    host = host.rstrip("/")
    return host if "://" in host else f"http://{host}"


class OllamaBackend:
    kind = "ollama"

    def __init__(self, model: str, options: dict[str, Any] | None = None):
        options = dict(options or {})
        if not model:
            raise HarnessError(
                "judge backend 'ollama:' names no model", fix="Use e.g. --judge ollama:llama3."
            )
        self.model = model
        self.spec = f"ollama:{model}"
        self.host = _display_host(
            options.get("host") or os.environ.get("OLLAMA_HOST") or "http://localhost:11434"
        )
        self.timeout = float(options.get("timeout", 120.0))
        self.decoding = decoding_options(options)
        self.seed = int(options.get("seed", 0))
        self.top_logprobs = _top_logprobs(options)
        self._client = None
        self._lock = threading.Lock()

    def _get_client(self):
        with self._lock:
            if self._client is None:
                import ollama

                self._client = ollama.Client(host=self.host, timeout=self.timeout)
            return self._client

    def _unreachable(self) -> HarnessError:
        return HarnessError(
            f"Ollama is not reachable at {self.host}: start it with 'ollama serve' and "
            f"'ollama pull {self.model}', or pass --judge none"
        )

    def check(self) -> None:
        import httpx
        import ollama

        try:
            with ollama.Client(host=self.host, timeout=min(self.timeout, 10.0)) as probe:
                listing = probe.list()
        except (ConnectionError, httpx.TransportError):
            raise self._unreachable() from None
        except ollama.ResponseError as e:
            raise HarnessError(
                f"Ollama at {self.host} answered HTTP {e.status_code} to /api/tags ({str(e.error)[:120]}): "
                f"is this an Ollama server? Fix the host, or pass --judge none"
            ) from None
        except ValueError as e:  # JSONDecodeError / a validation error: some other server (a web page?)
            raise HarnessError(
                f"the server at {self.host} answered /api/tags with something that is not Ollama's JSON "
                f"({type(e).__name__}): is OLLAMA_HOST / judge.host right? Fix the host, or pass --judge none"
            ) from None
        names = {m.model for m in listing.models if m.model}
        if not _ollama_has(names, self.model):
            have = ", ".join(sorted(names)[:8]) or "none"
            raise HarnessError(
                f"Ollama at {self.host} has no model '{self.model}' (pulled: {have}): "
                f"run 'ollama pull {self.model}', or pass --judge none"
            )

    def identity(self, seed: int | None = None) -> dict[str, Any]:
        return {"backend": "ollama", "model": self.model, "options": self._options(seed),
                "top_logprobs": self.top_logprobs}

    def _options(self, seed: int | None) -> dict[str, Any]:
        opts = {k: v for k, v in self.decoding.items() if k != "max_tokens"}
        if "max_tokens" in self.decoding:
            opts["num_predict"] = self.decoding["max_tokens"]
        opts["seed"] = self.seed if seed is None else int(seed)
        return opts

    def complete(self, messages: Messages, schema: dict | None = None, seed: int | None = None) -> str:
        return self.reply(messages, schema, seed).text

    def reply(self, messages: Messages, schema: dict | None = None, seed: int | None = None) -> Reply:
        """The reply, with token log-probs when the server gives them (Ollama >= 0.12.11)."""
        import httpx
        import ollama

        extra: dict[str, Any] = {"logprobs": True, "top_logprobs": self.top_logprobs} if self.top_logprobs else {}
        try:
            resp = self._get_client().chat(
                model=self.model,
                messages=messages,
                format=schema if schema else None,
                options=self._options(seed),
                **extra,
            )
        except ollama.ResponseError as e:
            code = e.status_code
            msg = f"Ollama HTTP {code}: {str(e.error)[:200]}"
            if extra and _refuses_logprobs(code, str(e.error)):
                self.top_logprobs = 0  # this server cannot: ask again without, and never again
                return self.reply(messages, schema, seed)
            if code is not None and (code >= 500 or code in (408, 429)):
                raise TransientJudgeError(msg) from None
            if code == 404:
                msg += f" (run 'ollama pull {self.model}')"
            raise JudgeRequestError(msg) from None
        except ConnectionError as e:  # ollama maps httpx.ConnectError to the built-in
            raise TransientJudgeError(f"cannot connect to Ollama at {self.host}: {e}") from None
        except httpx.TimeoutException as e:
            raise TransientJudgeError(
                f"Ollama request timed out after {self.timeout:g}s ({type(e).__name__})"
            ) from None
        except httpx.TransportError as e:  # dropped connection, protocol error
            raise TransientJudgeError(f"Ollama connection failed: {type(e).__name__}: {e}") from None
        except ValueError as e:  # not Ollama's JSON
            raise JudgeRequestError(f"Ollama at {self.host} answered with something that is not its JSON "
                                    f"({type(e).__name__})") from None
        tokens = None
        if extra and getattr(resp, "logprobs", None):
            tokens = [(t.token, float(t.logprob), [(a.token, float(a.logprob)) for a in (t.top_logprobs or [])])
                      for t in resp.logprobs]
        return Reply(resp.message.content or "", tokens)


def _ollama_has(names: set[str], model: str) -> bool:
    if model in names:
        return True
    if ":" not in model:
        return f"{model}:latest" in names
    if model.endswith(":latest"):
        return model[: -len(":latest")] in names
    return False


# --------------------------------------------------------------------------------------
# OpenAI-compatible
# --------------------------------------------------------------------------------------

_OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


class OpenAIBackend:
    kind = "openai"

    def __init__(self, model: str, options: dict[str, Any] | None = None):
        options = dict(options or {})
        if not model:
            raise HarnessError(
                "judge backend 'openai:' names no model", fix="Use e.g. --judge openai:gpt-4o-mini."
            )
        self.model = model
        self.spec = f"openai:{model}"
        self.base_url = (
            options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or _OPENAI_DEFAULT_URL
        ).rstrip("/")
        key = options.get("api_key") or os.environ.get("OPENAI_API_KEY")
        self._keyless = not key
        # local OpenAI-compatible servers (vLLM, llama.cpp, Ollama's /v1) accept any key
        self.api_key = key or "sk-no-key-required"
        self.timeout = float(options.get("timeout", 120.0))
        self.decoding = decoding_options(options)
        self.seed = int(options.get("seed", 0))
        self.top_logprobs = _top_logprobs(options)
        self.response_format = str(options.get("response_format", "json_schema"))
        if self.response_format not in ("json_schema", "json_object", "none"):
            raise HarnessError(
                f"judge option response_format={self.response_format!r} is not supported",
                fix="Use json_schema, json_object or none.",
            )
        self._client = None
        self._lock = threading.Lock()

    def _get_client(self):
        with self._lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0
                )
            return self._client

    def check(self) -> None:
        import openai

        if self._keyless and self.base_url == _OPENAI_DEFAULT_URL:
            raise HarnessError(
                f"OPENAI_API_KEY is not set for judge '{self.spec}': export OPENAI_API_KEY "
                f"(or set OPENAI_BASE_URL to a local OpenAI-compatible server), or pass --judge none"
            )
        try:
            page = self._get_client().with_options(timeout=min(self.timeout, 10.0)).models.list()
            ids = {m.id for m in page.data}
        except openai.AuthenticationError:
            raise HarnessError(
                f"the OpenAI-compatible server at {self.base_url} rejected the API key: "
                f"check OPENAI_API_KEY, or pass --judge none"
            ) from None
        except openai.APIConnectionError:
            raise HarnessError(
                f"OpenAI-compatible server is not reachable at {self.base_url}: start it or set "
                f"OPENAI_BASE_URL, or pass --judge none"
            ) from None
        except openai.NotFoundError:
            return  # some servers have no /models listing; the first request will tell
        except openai.APIStatusError as e:
            raise HarnessError(
                f"the OpenAI-compatible server at {self.base_url} answered HTTP {e.status_code} to "
                f"/models: check OPENAI_BASE_URL, or pass --judge none"
            ) from None
        except (openai.APIError, ValueError, AttributeError) as e:  # a 200 that is not the API's JSON
            raise HarnessError(
                f"the server at {self.base_url} answered /models with something that is not an "
                f"OpenAI-compatible API ({type(e).__name__}): check OPENAI_BASE_URL, or pass --judge none"
            ) from None
        if ids and self.model not in ids:
            have = ", ".join(sorted(ids)[:8])
            raise HarnessError(
                f"the OpenAI-compatible server at {self.base_url} does not serve model '{self.model}' "
                f"(serves: {have}): pick one of those, or pass --judge none"
            )

    def identity(self, seed: int | None = None) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": self.model,
            "options": {**self.decoding, "seed": self.seed if seed is None else int(seed)},
            "response_format": self.response_format,
            "top_logprobs": self.top_logprobs,
        }

    def complete(self, messages: Messages, schema: dict | None = None, seed: int | None = None) -> str:
        return self.reply(messages, schema, seed).text

    def reply(self, messages: Messages, schema: dict | None = None, seed: int | None = None) -> Reply:
        """The reply, with ``logprobs: true, top_logprobs: k`` asked for (unless off)."""
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.decoding["temperature"],
            "seed": self.seed if seed is None else int(seed),
        }
        if "max_tokens" in self.decoding:
            kwargs["max_tokens"] = self.decoding["max_tokens"]
        if schema and self.response_format == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": schema, "strict": False},
            }
        elif schema and self.response_format == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        if self.top_logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = self.top_logprobs
        try:
            resp = self._get_client().chat.completions.create(**kwargs)
        except openai.APITimeoutError:
            raise TransientJudgeError(
                f"OpenAI-compatible request timed out after {self.timeout:g}s"
            ) from None
        except openai.APIConnectionError as e:
            raise TransientJudgeError(f"OpenAI-compatible connection failed: {e}") from None
        except openai.APIStatusError as e:
            msg = f"OpenAI-compatible HTTP {e.status_code}: {str(e.message)[:200]}"
            if self.top_logprobs and _refuses_logprobs(e.status_code, str(e.message)):
                self.top_logprobs = 0  # this server cannot: ask again without, and never again
                return self.reply(messages, schema, seed)
            if e.status_code >= 500 or e.status_code in (408, 409, 429):
                raise TransientJudgeError(msg) from None
            raise JudgeRequestError(msg) from None
        if not resp.choices:
            raise TransientJudgeError("OpenAI-compatible reply had no choices")
        choice = resp.choices[0]
        tokens = None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if self.top_logprobs and content:
            tokens = [(t.token, float(t.logprob), [(a.token, float(a.logprob)) for a in (t.top_logprobs or [])])
                      for t in content]
        return Reply(choice.message.content or "", tokens)


# --------------------------------------------------------------------------------------


def parse_backend_spec(spec: str) -> tuple[str, str]:
    """``"ollama:llama3:8b"`` -> ``("ollama", "llama3:8b")``; ``"none"`` -> ``("none", "")``."""
    s = (spec or "").strip()
    if s.lower() in ("none", ""):
        return "none", ""
    kind, sep, model = s.partition(":")
    kind = kind.lower()
    if not sep or kind not in ("ollama", "openai", "hf"):
        raise HarnessError(
            f"judge backend {spec!r} is not understood",
            fix="Use ollama:<model>, openai:<model>, hf:<model spec> or none.",
        )
    if not model.strip():
        raise HarnessError(f"judge backend {spec!r} names no model", fix=f"Use e.g. {kind}:<model>.")
    return kind, model.strip()


def make_backend(spec: str, options: dict[str, Any] | None = None) -> JudgeBackend | None:
    """Build the backend for ``spec``; ``"none"`` gives None (no judging).

    options (all optional): host (ollama), base_url / api_key / response_format (openai),
    generate / format_chat / loglikelihood / batch_size (hf), scoring (auto |
    text), top_logprobs (ollama, openai; 20), timeout, seed, temperature (0), num_ctx,
    max_tokens. Unknown keys are ignored, so a judge config dict can be passed as is.
    """
    options = {k: v for k, v in dict(options or {}).items() if v is not None}
    kind, model = parse_backend_spec(spec)
    if kind == "none":
        return None
    if kind == "ollama":
        return OllamaBackend(model, options)
    if kind == "openai":
        return OpenAIBackend(model, options)
    from .inprocess import HFBackend

    return HFBackend(model, options.get("generate"), options.get("format_chat"), options)
