"""``OllamaEngine``: a model on an Ollama server, through the official ``ollama`` client.

Generation goes through ``/api/chat`` (a ServerChatFormat prompt: Ollama applies the model's
template) or ``/api/generate`` with ``raw: true`` (a prompt rendered here, sent as is).
Ollama returns log-probs of generated tokens at most, never of the prompt, so this engine
cannot score log-likelihood or perplexity: ``info.capabilities`` is generation only and the
scoring methods raise a one-line HarnessError.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from harness.backends.served import ServedEngine, ServerRequestError, TransientServerError, chat_messages
from harness.errors import HarnessError, did_you_mean


def _host(host: str) -> str:
    host = str(host or "").strip().rstrip("/")
    return host if "://" in host else f"http://{host}"


class OllamaEngine(ServedEngine):
    """One model on an Ollama server (``host``: e.g. http://127.0.0.1:11434)."""

    backend = "ollama"
    _url_key = "host"

    def __init__(self, model: str, host: str, *, concurrency: int = 4, timeout: float = 120,
                 max_retries: int = 4, cache_dir: str | Path | None = None, backoff: float = 0.5,
                 max_backoff: float = 8.0):
        if not str(host or "").strip():
            raise HarnessError(f"served model {model!r} (ollama) has no host",
                               fix="Set `host:` (e.g. http://127.0.0.1:11434).")
        super().__init__(model, _host(host), concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                         cache_dir=cache_dir, backoff=backoff, max_backoff=max_backoff)
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.url

    def _get_client(self):
        with self._client_lock:
            if self._client is None:
                import ollama

                self._client = ollama.Client(host=self.url, timeout=self.timeout)
            return self._client

    # ------------------------------------------------------------------ one request
    def _generation_request(self, prompt: str, chat: bool, params: dict[str, Any]) -> dict:
        options: dict[str, Any] = {"temperature": params["temperature"], "seed": params["seed"],
                                   "num_predict": params["max_new_tokens"]}
        if params.get("top_p") is not None:
            options["top_p"] = params["top_p"]
        if params["stop"]:
            options["stop"] = params["stop"]
        if chat:
            return {"api": "chat", "messages": chat_messages(prompt), "options": options}
        return {"api": "generate", "prompt": prompt, "options": options}

    def _call(self, request: dict) -> dict:
        import httpx
        import ollama

        client = self._get_client()
        try:
            if request["api"] == "chat":
                r = client.chat(model=self.model, messages=request["messages"], options=request["options"])
                text = r.message.content or ""
            else:
                r = client.generate(model=self.model, prompt=request["prompt"], raw=True, options=request["options"])
                text = r.response or ""
        except ollama.ResponseError as e:
            code = e.status_code
            msg = f"HTTP {code}: {str(e.error)[:200]}"
            if code is not None and (code >= 500 or code in (408, 429)):
                raise TransientServerError(msg) from None
            raise ServerRequestError(msg + (f" (run 'ollama pull {self.model}')" if code == 404 else "")) from None
        except ConnectionError as e:  # the client turns httpx.ConnectError into the built-in
            raise TransientServerError(f"cannot connect: {e}") from None
        except httpx.TimeoutException as e:
            raise TransientServerError(f"timed out after {self.timeout:g}s ({type(e).__name__})") from None
        except httpx.TransportError as e:  # a dropped connection
            raise TransientServerError(f"connection failed: {type(e).__name__}: {e}") from None
        except ValueError as e:  # not Ollama's JSON
            raise ServerRequestError(f"not Ollama's JSON ({type(e).__name__})") from None
        return {"text": text, "finish_reason": r.done_reason, "stop_reason": None, "n_tokens": r.eval_count}

    # ------------------------------------------------------------------ the probe
    def _probe(self) -> dict[str, Any]:
        import httpx
        import ollama

        try:
            with ollama.Client(host=self.url, timeout=min(self.timeout, 10.0)) as probe:
                listing = probe.list()
        except (ConnectionError, httpx.TransportError):
            raise HarnessError(f"Ollama is not reachable at {self.url} (model {self.model!r})",
                               fix=f"Start it ('ollama serve', then 'ollama pull {self.model}') or fix host.") from None
        except ollama.ResponseError as e:
            raise HarnessError(f"the server at {self.url} answered HTTP {e.status_code} to /api/tags",
                               fix="Check host: is it an Ollama server?") from None
        except ValueError as e:
            raise HarnessError(f"the server at {self.url} answered /api/tags with something that is not "
                               f"Ollama's JSON ({type(e).__name__})", fix="Check host.") from None
        digests = {m.model: m.digest for m in listing.models if m.model}
        name = next((n for n in (self.model, f"{self.model}:latest") if n in digests), None)
        if name is None and self.model.endswith(":latest") and self.model[: -len(":latest")] in digests:
            name = self.model[: -len(":latest")]
        if name is None:
            pulled = sorted(digests)
            raise HarnessError(f"Ollama at {self.url} has no model {self.model!r}{did_you_mean(self.model, pulled)} "
                               f"(pulled: {', '.join(pulled[:8]) or 'none'})",
                               fix=f"Run 'ollama pull {self.model}', or use one of those names.")
        return {"served": sorted(digests), "model_id": {"digest": digests[name]} if digests[name] else None,
                "server_version": self._server_version(), "prompt_logprobs": False,
                "why": "Ollama's API returns no log-probs for prompt tokens"}

    def _server_version(self) -> str | None:
        import httpx

        try:
            r = httpx.get(f"{self.url}/api/version", timeout=min(self.timeout, 5.0))
            v = r.json().get("version") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return str(v) if v else None
