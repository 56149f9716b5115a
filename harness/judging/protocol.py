"""What every judge backend is: the ``JudgeBackend`` protocol, its reply and its errors, shared
by the server backends (backends.py) and the in-process one (inprocess.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]


class JudgeRequestError(Exception):
    """A judge request failed in a way that retrying the same request will not fix."""


class TransientJudgeError(JudgeRequestError):
    """A judge request failed in transport (5xx, 429, refused/dropped connection, timeout)."""


class LogprobsUnavailable(JudgeRequestError):
    """The in-process judge's engine cannot give prompt log-probs (a served model without them):
    the asker turns log-prob scoring off and judges from generated text instead."""


@dataclass
class Reply:
    """A judge's reply text and, when the server gave them, its tokens with their log-probs and
    top alternatives: ``[(token, logprob, [(alternative, logprob), ...]), ...]``."""

    text: str
    tokens: list[tuple[str, float, list[tuple[str, float]]]] | None = None


@runtime_checkable
class JudgeBackend(Protocol):
    spec: str  # "ollama:llama3"
    kind: str  # "ollama" | "openai" | "hf"
    model: str

    def check(self) -> None:
        """Raise HarnessError (one line, with the fix) when the judge cannot be used."""

    def complete(self, messages: Messages, schema: dict | None = None, seed: int | None = None) -> str:
        """The judge's reply text to a chat. Raises TransientJudgeError / JudgeRequestError."""

    def identity(self, seed: int | None = None) -> dict[str, Any]:
        """What determines the reply besides the messages (part of the cache key)."""


def decoding_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"temperature": float(options.get("temperature", 0.0))}
    if options.get("num_ctx"):
        out["num_ctx"] = int(options["num_ctx"])
    if options.get("max_tokens"):
        out["max_tokens"] = int(options["max_tokens"])
    return out
