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
    """An aggregate with its 95% interval. ``value`` is None when nothing could be scored.
    ``ci_method``: how ``ci`` was made, "wilson" (0/1 metrics) or "bootstrap"; None in runs
    scored before it was recorded (those used the bootstrap)."""

    value: float | None
    ci: tuple[float, float] | None = None
    n: int = 0
    missing: int = 0
    higher_is_better: bool = True
    stderr: float | None = None
    ci_method: str | None = None

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


@dataclass(frozen=True)
class Coverage:
    """The least an aggregate needs before a reader may take it for a result (``coverage:`` in
    harness.yaml; stored in scores.json so reports and gates apply the same rule). Below it the
    report shows "insufficient" instead of the number, never marks it best or ▲/▼, and a gate
    on it fails closed."""

    min_n: int = 10
    max_missing_share: float = 0.5

    def shortfall(self, mv: MetricValue | dict[str, Any] | None) -> str | None:
        """Why ``mv`` is too thin to read ("n=2 < 10", "4/6 missing"), or None when it is enough."""
        if mv is None:
            return None
        n = int((mv.get("n") if isinstance(mv, dict) else mv.n) or 0)
        missing = int((mv.get("missing") if isinstance(mv, dict) else mv.missing) or 0)
        if n < self.min_n:
            return f"n={n} < {self.min_n}" + (f", {missing} missing" if missing else "")
        total = n + missing
        if total and missing / total > self.max_missing_share:
            return f"{missing}/{total} missing"
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Coverage:
        """The stored rule; the default for runs made before it was stored."""
        return _from_dict(cls, data) if isinstance(data, dict) else cls()


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
