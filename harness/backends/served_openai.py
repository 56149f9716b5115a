"""``OpenAIEngine``: a model on an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, ...).

Generation goes through ``/v1/chat/completions`` (a ServerChatFormat prompt) or
``/v1/completions`` (a prompt rendered here). Scoring (loglikelihood, token_nll, rolling_nll)
echoes the text through ``/v1/completions`` with ``echo: true, logprobs: 1, max_tokens: 1`` and
reads the prompt tokens' log-probs, as vLLM's server returns them; where a continuation starts
is found by token counts (the context echoed alone: ``usage.prompt_tokens``), the split the HF
engine and lm-eval make. The probe asks once per (base_url, model) whether the server gives
prompt log-probs (llama.cpp and Ollama's /v1 do not); without them scoring is refused.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.backends.served import (
    ServedEngine,
    ServerRequestError,
    TransientServerError,
    chat_messages,
    echo_scores,
    lm_eval_split,
    looks_like_chat,
    sum_last,
)
from harness.engine import NLL
from harness.errors import HarnessError, did_you_mean

log = logging.getLogger("harness.engine")

PROBE_TEXT = "Hello world, this is a probe."  # ASCII: its tokens join back to the text
_OPENAI_URL = "https://api.openai.com/v1"


class OpenAIEngine(ServedEngine):
    """One model name on an OpenAI-compatible server. ``api_key``: else ``OPENAI_API_KEY``, else
    a placeholder (local servers take any key). ``bos_text``: the model's BOS token as text
    (e.g. ``"<s>"``), put before a text scored from its first token when the server adds no BOS
    itself; without it that first token is not scored (rolling_nll counts one token less)."""

    backend = "openai"

    def __init__(self, model: str, base_url: str, *, api_key: str | None = None, concurrency: int = 4,
                 timeout: float = 120, max_retries: int = 4, cache_dir: str | Path | None = None,
                 bos_text: str | None = None, backoff: float = 0.5, max_backoff: float = 8.0):
        base_url = str(base_url or "").strip().rstrip("/")
        if not base_url:
            raise HarnessError(f"served model {model!r} has no base_url",
                               fix="Set `base_url:` (e.g. http://127.0.0.1:8000/v1).")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        self._keyless = not key
        self.api_key = key or "sk-no-key-required"
        self.bos_text = bos_text or None
        super().__init__(model, base_url, concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                         cache_dir=cache_dir, backoff=backoff, max_backoff=max_backoff)
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.url

    def _get_client(self):
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(base_url=self.url, api_key=self.api_key, timeout=self.timeout,
                                             max_retries=0)
            return self._client

    @property
    def max_length(self) -> int | None:
        """The server's context length when it says (vLLM's ``max_model_len``), else None."""
        n = (self.probe().get("model_card") or {}).get("max_model_len")
        return int(n) if n else None

    # ------------------------------------------------------------------ one request
    def _call(self, request: dict) -> dict:
        """One HTTP request -> a normalised JSON-able answer. Raises TransientServerError /
        ServerRequestError."""
        import openai

        client, api = self._get_client(), request["api"]
        try:
            if api == "chat":
                r = client.chat.completions.create(model=self.model, messages=request["messages"],
                                                   **request["params"])
            elif api == "completions":
                r = client.completions.create(model=self.model, prompt=request["prompt"], **request["params"])
            else:  # echo: the prompt's log-probs
                r = client.completions.create(model=self.model, prompt=request["prompt"], echo=True, logprobs=1,
                                              max_tokens=1, temperature=0)
        except openai.APITimeoutError:
            raise TransientServerError(f"timed out after {self.timeout:g}s") from None
        except openai.APIConnectionError as e:
            raise TransientServerError(f"connection failed: {e}") from None
        except openai.APIStatusError as e:
            msg = f"HTTP {e.status_code}: {str(e.message)[:200]}"
            if e.status_code >= 500 or e.status_code in (408, 409, 429):
                raise TransientServerError(msg) from None
            raise ServerRequestError(msg) from None
        except (openai.APIError, ValueError) as e:  # a 200 that is not the API's JSON
            raise ServerRequestError(f"not an OpenAI-compatible answer ({type(e).__name__})") from None
        if not getattr(r, "choices", None):
            raise TransientServerError("the answer had no choices")
        c, usage = r.choices[0], getattr(r, "usage", None)
        extra = getattr(c, "model_extra", None) or {}
        if api == "chat":
            return {"text": c.message.content or "", "finish_reason": c.finish_reason,
                    "stop_reason": extra.get("stop_reason"), "n_tokens": getattr(usage, "completion_tokens", None)}
        if api == "completions":
            return {"text": c.text or "", "finish_reason": c.finish_reason, "stop_reason": extra.get("stop_reason"),
                    "n_tokens": getattr(usage, "completion_tokens", None)}
        lp = c.logprobs
        n_prompt = getattr(usage, "prompt_tokens", None)
        if lp is None or not lp.token_logprobs:
            return {"text": c.text or "", "tokens": [], "n": n_prompt, "lp": None, "best": None}
        n = n_prompt if n_prompt is not None else max(0, len(lp.token_logprobs) - 1)
        scores = echo_scores(lp.token_logprobs, lp.top_logprobs, n)
        return {"text": c.text or "", "tokens": list(lp.tokens or [])[:n], "n": n, **scores}

    def _generation_request(self, prompt: str, chat: bool, params: dict[str, Any]) -> dict:
        p = {"max_tokens": params["max_new_tokens"], "temperature": params["temperature"], "seed": params["seed"]}
        if params.get("top_p") is not None:
            p["top_p"] = params["top_p"]
        if params["stop"]:
            p["stop"] = params["stop"]
        if chat:
            return {"api": "chat", "messages": chat_messages(prompt), "params": p}
        return {"api": "completions", "prompt": prompt, "params": p}

    # ------------------------------------------------------------------ the probe
    def _probe(self) -> dict[str, Any]:
        card, served = self._model_card()
        found: dict[str, Any] = {"served": served, "model_card": card,
                                 "model_id": {k: card.get(k) for k in ("root", "parent") if card.get(k)} or None,
                                 "server_version": self._server_version()}
        found.update(self._probe_prompt_logprobs())
        return found

    def _unreachable(self) -> HarnessError:
        return HarnessError(f"the OpenAI-compatible server at {self.url} is not reachable (model {self.model!r})",
                            fix="Start the server (e.g. python -m vllm.entrypoints.openai.api_server --model ...) "
                                "or fix base_url.")

    def _model_card(self) -> tuple[dict[str, Any], list[str]]:
        import openai

        if self._keyless and self.url == _OPENAI_URL:
            raise HarnessError(f"OPENAI_API_KEY is not set for served model {self.model!r} at {self.url}",
                               fix="Export OPENAI_API_KEY, or set base_url to a local OpenAI-compatible server.")
        try:
            page = self._get_client().with_options(timeout=min(self.timeout, 10.0)).models.list()
            cards = {m.id: m.model_dump() for m in page.data}
        except openai.AuthenticationError:
            raise HarnessError(f"the OpenAI-compatible server at {self.url} rejected the API key",
                               fix="Set api_key (or OPENAI_API_KEY) to a key that server accepts.") from None
        except openai.APIConnectionError:
            raise self._unreachable() from None
        except openai.NotFoundError:
            if not self.url.endswith("/v1"):
                raise HarnessError(f"the server at {self.url} has no /models",
                                   fix=f"base_url usually ends in /v1: try {self.url}/v1.") from None
            return {}, []  # a server without a listing: the first request will tell
        except openai.APIStatusError as e:
            raise HarnessError(f"the server at {self.url} answered HTTP {e.status_code} to /models",
                               fix="Check base_url and that the server is OpenAI-compatible.") from None
        except (openai.APIError, ValueError, AttributeError) as e:
            raise HarnessError(f"the server at {self.url} answered /models with something that is not an "
                               f"OpenAI-compatible API ({type(e).__name__})", fix="Check base_url.") from None
        served = sorted(cards)
        if cards and self.model not in cards:
            raise HarnessError(f"the OpenAI-compatible server at {self.url} does not serve model {self.model!r}"
                               f"{did_you_mean(self.model, served)} (it serves: {', '.join(served[:8])})",
                               fix="Use one of those names (an adapter served with --lora-modules NAME=PATH is "
                                   "the model NAME), or start the server with this model.")
        card = dict(cards.get(self.model, {}))
        if card.get("parent") and not card.get("max_model_len"):  # an adapter: its base's context
            card["max_model_len"] = (cards.get(card["parent"]) or {}).get("max_model_len")
        keep = ("root", "parent", "max_model_len", "owned_by")
        return {k: card[k] for k in keep if card.get(k) is not None}, served

    def _server_version(self) -> str | None:
        """vLLM (and some others) answer ``GET /version`` next to ``/v1``."""
        import httpx

        root = self.url.removesuffix("/v1")
        try:
            r = httpx.get(f"{root}/version", timeout=min(self.timeout, 5.0))
            v = r.json().get("version") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return str(v) if v else None

    def _probe_prompt_logprobs(self) -> dict[str, Any]:
        """Echo PROBE_TEXT with logprobs: are there log-probs for the prompt's tokens, and does
        the server put a BOS token before them?"""
        from harness.judging.asker import with_retries

        try:
            got, _ = with_retries(lambda: self._call({"api": "echo", "prompt": PROBE_TEXT}),
                                  retries=self.requests.max_retries, backoff=self.requests.backoff,
                                  max_backoff=self.requests.max_backoff, transient=(TransientServerError,))
        except ServerRequestError as e:
            return {"prompt_logprobs": False, "why": f"/completions with echo and logprobs: {e}"}
        except TransientServerError as e:
            raise HarnessError(f"the OpenAI-compatible server at {self.url} failed while probed ({e})",
                               fix="Check the server's log and rerun.") from None
        lps, tokens, n = got.get("lp"), got.get("tokens") or [], got.get("n")
        if not lps or not n or len(lps) < n or all(v is None for v in lps[:n]) \
                or not str(got.get("text", "")).lstrip().startswith(PROBE_TEXT[:5]):
            return {"prompt_logprobs": False, "why": "the server echoes no log-probs for prompt tokens"}
        joined = "".join(tokens)
        adds_bos = None if not tokens else (
            False if joined == PROBE_TEXT else (True if "".join(tokens[1:]) == PROBE_TEXT else None))
        return {"prompt_logprobs": True, "why": "echo + logprobs on /completions",
                "adds_bos": adds_bos, "bos": tokens[0] if adds_bos else None}

    # ------------------------------------------------------------------ scoring
    def _scorable(self, what: str) -> None:
        if not self.probe().get("prompt_logprobs"):
            raise self.refuse_scoring(what)

    def _echo_all(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> list[dict]:
        reqs = [{"api": "echo", "prompt": t} for t in texts]
        got = self.requests.many(reqs, self.identity(), progress)
        for t, g in zip(texts, got):
            if g.get("lp") is None or g.get("n") is None:
                raise HarnessError(f"the server at {self.url} gave no prompt log-probs for a text ({t[:40]!r})",
                                   fix="Check the server (the probe found them earlier).")
        return got

    def _prefix(self) -> tuple[str, int | None]:
        """(text put before a text scored from its first token, how many tokens it is): the
        server's own BOS (1, nothing to add), ``bos_text``, or nothing (0: the first token has no
        log-prob). None: count ``bos_text``."""
        if self.probe().get("adds_bos"):
            return "", 1
        if self.bos_text:
            return self.bos_text, None
        return "", 0

    def _pairs(self, pairs: list[tuple[str, str]], progress=None) -> list[tuple[float, bool, int]]:
        """(sum log p(cont | ctx), greedy, tokens scored) per pair: ctx + cont echoed once, the
        context echoed alone for its token count (the HF engine's split)."""
        prefix, n_prefix = self._prefix()
        texts = [(c + x) if c else (prefix + x) for c, x in pairs]
        counts = [c for c, _ in pairs if c] + ([prefix] if n_prefix is None else [])
        got = self._echo_all(texts + counts, progress)
        whole, n_of = got[:len(texts)], {t: g["n"] for t, g in zip(counts, got[len(texts):])}
        out = []
        for (c, _), g in zip(pairs, whole):
            n_ctx = n_of[c] if c else (n_of[prefix] if n_prefix is None else n_prefix)
            n = g["n"] - n_ctx
            out.append((*sum_last(g, n), max(0, n)))
        return out

    def loglikelihood(self, requests: Sequence[tuple[str, str]],
                      progress: Callable[[int, int], None] | None = None) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), continuation is greedy) per request, lm-eval's
        split (the context's trailing whitespace moves to the continuation)."""
        self._scorable("loglikelihood")
        pairs = [lm_eval_split(c, x) if c else (c, x) for c, x in requests]
        self._refuse_chat([c for c, _ in pairs])
        return [(lp, greedy) for lp, greedy, _ in self._pairs(pairs, progress)]

    def token_nll(self, prompts: Sequence[str], targets: Sequence[str]) -> list[NLL]:
        """NLL of each target given its prompt; prompt tokens are not scored."""
        if len(prompts) != len(targets):
            raise ValueError("token_nll: prompts and targets differ in length")
        self._scorable("perplexity (token_nll)")
        self._refuse_chat(list(prompts))
        scored = self._pairs(list(zip(prompts, targets)))
        return [NLL(-lp, n, len(t.encode("utf-8"))) for (lp, _, n), t in zip(scored, targets)]

    def rolling_nll(self, texts: Sequence[str], max_length: int | None = None,
                    stride: int | None = None) -> list[NLL]:
        """NLL of raw texts, every token scored with all the text before it: the HF engine's
        numbers for a text that fits one window. Longer texts are refused (a server scores a
        prompt whole; it has no windows). Without a BOS (the server's or ``bos_text``) the first
        token has no log-prob and is not counted."""
        self._scorable("perplexity (rolling_nll)")
        prefix, n_prefix = self._prefix()
        if n_prefix is None:
            n_prefix = self._echo_all([prefix])[0]["n"]
        got = self._echo_all([prefix + t for t in texts])
        limits = [x for x in (max_length, self.max_length) if x]
        window = min(limits) if limits else None
        out = []
        for t, g in zip(texts, got):
            lps = g["lp"][n_prefix:] if n_prefix else g["lp"][1:]
            if window and len(lps) + (0 if n_prefix else 1) > window:
                raise HarnessError(f"a text of {len(lps)} tokens is longer than the window of {window} tokens, and "
                                   f"a served model scores a prompt whole (no rolling windows)",
                                   fix="Shorten the texts, or evaluate this model with backend hf or vllm.")
            if any(v is None for v in lps):
                raise HarnessError(f"the server at {self.url} left tokens of a text without a log-prob",
                                   fix="Check the server's echo + logprobs support.")
            out.append(NLL(-float(sum(lps)), len(lps), len(t.encode("utf-8"))))
        if not n_prefix and texts:
            log.warning("%s at %s adds no BOS token: the first token of each text is not scored "
                        "(set bos_text to score it)", self.model, self.url)
        return out

    def _refuse_chat(self, prompts: list[str]) -> None:
        if any(looks_like_chat(p) for p in prompts):
            raise HarnessError(f"model {self.model!r} ({self.url}) is prompted through the server's chat API, "
                               "whose template is not known here, so a log-likelihood given that prompt "
                               "cannot be computed", fix="Set `prompt_format:` on this model (e.g. chat "
                               "templates rendered here: chatml, llama3) to score through /v1/completions.")
