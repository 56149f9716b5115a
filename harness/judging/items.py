"""What a judge is asked about: one answer (``JudgeItem``, pointwise) or two models' answers to
the same item (``PairItem``, pairwise), built from a run's Samples."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError


@dataclass
class JudgeItem:
    """One answer to grade (pointwise)."""

    id: str
    task: str
    model: str
    lang: str = "en"
    question: str = ""  # instruction + input
    reference: str = ""
    answer: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairItem:
    """Two models' answers to the same item (pairwise): does ``model_a`` beat ``model_b``?"""

    id: str
    task: str
    model_a: str
    answer_a: str
    model_b: str
    answer_b: str
    lang: str = "en"
    question: str = ""
    reference: str = ""


def _question(sample) -> str:
    parts = [sample.instruction.strip(), sample.input.strip()]
    return "\n\n".join(p for p in parts if p) or sample.prompt


def items_from_samples(samples: Iterable) -> list[JudgeItem]:
    """JudgeItems from harness Samples (question = instruction + input)."""
    return [
        JudgeItem(
            id=s.id,
            task=s.task,
            model=s.model,
            lang=s.lang or "en",
            question=_question(s),
            reference=s.reference,
            answer=s.response,
        )
        for s in samples
    ]


def default_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """Each later model against each earlier one, neighbours first:
    [base, sft, dpo] -> [(sft, base), (dpo, sft), (dpo, base)]."""
    from harness.metrics.stats import model_pairs

    models = list(models)
    return sorted(model_pairs(models), key=lambda p: (models.index(p[0]) - models.index(p[1]), models.index(p[0])))


def pairs_from_samples(
    samples_by_model: dict[str, Iterable], pairs: Sequence[tuple[str, str]] | None = None
) -> list[PairItem]:
    """PairItems for the items (same task and id) that both models of each pair answered."""
    indexed = {m: {(s.task, s.id): s for s in ss} for m, ss in samples_by_model.items()}
    pairs = list(pairs) if pairs is not None else default_pairs(list(samples_by_model))
    out: list[PairItem] = []
    for a, b in pairs:
        if a not in indexed or b not in indexed:
            raise HarnessError(f"pairwise judge: no samples for model '{a if a not in indexed else b}'")
        for key, sa in indexed[a].items():
            sb = indexed[b].get(key)
            if sb is None:
                continue
            out.append(
                PairItem(
                    id=sa.id,
                    task=sa.task,
                    model_a=a,
                    answer_a=sa.response,
                    model_b=b,
                    answer_b=sb.response,
                    lang=sa.lang or "en",
                    question=_question(sa),
                    reference=sa.reference,
                )
            )
    return out
