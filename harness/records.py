"""Typed records that stages write to the run directory and read back.

They are plain dataclasses serialised as JSON objects (one per line in JSONL files), so a
run directory can be read without importing torch or any model code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Sample:
    """One evaluated item of a generation task for one model."""

    id: str
    task: str
    model: str = ""
    lang: str = "en"
    instruction: str = ""
    input: str = ""
    reference: str = ""
    prompt: str = ""  # the exact text sent to the model
    response: str = ""  # the model's answer, prompt/headers/end tokens stripped
    n_tokens: int = 0  # tokens generated
    truncated: bool = False  # stopped by max_new_tokens rather than EOS/stop
    metrics: dict[str, float | None] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return _from_dict(cls, data)


@dataclass
class MetricValue:
    """An aggregate with its 95% interval. ``value`` is None when nothing could be scored."""

    value: float | None
    ci: tuple[float, float] | None = None
    n: int = 0
    missing: int = 0
    higher_is_better: bool = True
    stderr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricValue:
        mv = _from_dict(cls, data)
        if mv.ci is not None:
            mv.ci = (float(mv.ci[0]), float(mv.ci[1]))
        return mv


@dataclass
class PairedTest:
    """Model ``a`` against model ``b`` on the same samples: diff = a - b."""

    metric: str
    a: str
    b: str
    diff: float
    ci: tuple[float, float] | None
    p_value: float | None
    test: str  # "paired-bootstrap" | "mcnemar"
    significant: bool
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairedTest:
        return _from_dict(cls, data)


@dataclass
class Verdict:
    """One judge decision. ``score``/``winner`` None means missing (never 0)."""

    id: str  # sample id
    task: str
    model: str  # pointwise: the model judged; pairwise: "a_vs_b"
    judge: str  # judge definition name
    score: float | None = None  # pointwise
    winner: str | None = None  # pairwise: model name, "tie", or None when missing
    rationale: str = ""
    raw: str = ""  # raw reply(ies), kept for audit
    error: str | None = None  # why it is missing
    spread: float | None = None  # k repeats: max - min
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return _from_dict(cls, data)
