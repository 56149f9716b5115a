"""The Engine: the narrow waist every checkpoint is served through.

Everything above it (the generate, benchmark and judge stages, the lm-eval adapter) talks to
an ``Engine`` and never to a model, a tokenizer or a server; each backend is one class that
implements this protocol (``harness/backends/hf.py`` is the transformers one). The questions an
engine answers, all batched:

- ``generate(prompts, fmt=...)``: greedy (or sampled) continuations, stopped per row at EOS,
  the prompt format's stop strings and the caller's; batched output equals one-at-a-time output.
  The prompt format is passed per call (the model pool decides it), never stored on the engine.
- ``loglikelihood([(context, continuation)])``: sum log p(continuation | context) and whether
  the continuation is the greedy one (lm-eval's token-boundary handling).
- ``token_nll(prompts, targets)`` / ``rolling_nll(texts)``: negative log-likelihood records
  (nats, tokens, UTF-8 bytes) for response perplexity and raw-text perplexity.

A backend declares what it can do in ``info.capabilities`` so a stage can refuse work a backend
cannot do (a served model without prompt log-probs cannot score perplexity) before it starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

GENERATE = "generate"
LOGLIKELIHOOD = "loglikelihood"   # also token_nll and rolling_nll: all need prompt log-probs
CAPABILITIES = (GENERATE, LOGLIKELIHOOD)

Progress = Callable[[int, int], None]


@dataclass
class Generation:
    text: str          # the answer (after extract_response)
    raw: str           # decoded new text, before stripping
    n_tokens: int      # new tokens, including a final EOS
    truncated: bool    # hit max_new_tokens without EOS or a stop string
    finish: str = "eos"  # "eos" | "stop" | "length"


@dataclass
class NLL:
    nll_sum: float     # nats
    n_tokens: int
    n_bytes: int       # UTF-8 bytes of the scored text

    @property
    def mean(self) -> float:
        return self.nll_sum / self.n_tokens if self.n_tokens else float("nan")

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean) if self.n_tokens else float("nan")

    @property
    def bits_per_byte(self) -> float:
        return self.nll_sum / (self.n_bytes * math.log(2)) if self.n_bytes else float("nan")


@dataclass(frozen=True)
class EngineInfo:
    """What a backend is and can do; recorded in run.json."""

    backend: str                                  # "hf", "vllm", "openai", "ollama", ...
    version: str = ""                             # the serving library's version
    capabilities: frozenset[str] = frozenset(CAPABILITIES)
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "version": self.version,
                "capabilities": sorted(self.capabilities), **self.details}


@runtime_checkable
class Engine(Protocol):
    """One checkpoint, served. See the module docstring."""

    info: EngineInfo

    def generate(self, prompts: Sequence[str], *, fmt: Any = None, max_new_tokens: int = 128,
                 temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 progress: Progress | None = None) -> list[Generation]: ...

    def loglikelihood(self, requests: Sequence[tuple[str, str]],
                      progress: Progress | None = None) -> list[tuple[float, bool]]: ...

    def token_nll(self, prompts: Sequence[str], targets: Sequence[str]) -> list[NLL]: ...

    def rolling_nll(self, texts: Sequence[str], max_length: int | None = None,
                    stride: int | None = None) -> list[NLL]: ...
