"""Judge–human agreement on the pairs both rated: raw agreement and Cohen's kappa. Pure functions.

A pairwise judge's verdict on ``<a>_vs_<b>`` (``Verdict.winner``: a, b, "tie" or None = missing)
and a human vote on the same prompt item and the same two models (shown in either order) are
both mapped to one label in the judge's orientation: ``"a"`` (the pair's first model is better),
``"b"`` or ``"tie"``. A human "both bad" is a ``"tie"`` here (the voter preferred neither answer).
Every human vote on a judged pair is one rated unit (so two voters on one item are two units);
pairs the judge left missing are counted apart and not rated.

- agreement: share of units where the labels are equal (MT-Bench's "with ties"); also on the
  units where neither said tie (MT-Bench's "without ties": humans agree with each other 63% /
  81% there, GPT-4 with humans 66% / 85%).
- Cohen's kappa over the three labels: (p_o - p_e) / (1 - p_e), with p_e from each rater's
  own label frequencies; None when p_e = 1 (both raters always gave the same single label).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.arena.votes import Vote
from harness.records import Verdict

LABELS = ("a", "b", "tie")


@dataclass(frozen=True)
class Agreement:
    """How one pairwise judge agrees with the human votes on the pairs both rated."""

    judge: str
    n: int  # rated units (human votes whose pair the judge decided)
    agree: float | None  # share of equal labels (ties included)
    kappa: float | None
    n_without_ties: int
    agree_without_ties: float | None
    judge_missing: int  # human votes on pairs the judge has no verdict for (missing reply)


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same units; None when it is undefined."""
    if len(first) != len(second):
        raise ValueError(f"the raters labelled {len(first)} and {len(second)} units")
    n = len(first)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(first, second)) / n
    c1, c2 = Counter(first), Counter(second)
    expected = sum(c1[k] * c2[k] for k in set(c1) | set(c2)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def human_label(vote: Vote, a: str, b: str) -> str:
    """The vote in the orientation (a, b): "a", "b" or "tie" ("both bad" is a tie)."""
    winner = vote.winner()
    if winner == a:
        return "a"
    if winner == b:
        return "b"
    return "tie"


def judge_label(verdict: Verdict, a: str, b: str) -> str | None:
    """A pairwise verdict on (a, b) as "a", "b", "tie"; None when the verdict is missing."""
    if verdict.winner is None or verdict.error:
        return None
    if verdict.winner == "tie":
        return "tie"
    return {a: "a", b: "b"}.get(verdict.winner)


def pair_of(verdict: Verdict) -> tuple[str, str] | None:
    """The (a, b) of a pairwise verdict: meta model_a / model_b, else its ``<a>_vs_<b>`` name."""
    a, b = verdict.meta.get("model_a"), verdict.meta.get("model_b")
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if verdict.model.count("_vs_") == 1:
        a, b = verdict.model.split("_vs_")
        return a, b
    return None


def judge_human_agreement(votes: Sequence[Vote], verdicts: Iterable[Verdict]) -> list[Agreement]:
    """One Agreement per pairwise judge that rated at least one pair a human voted on."""
    by_judge: dict[str, dict[tuple[str, str, frozenset], tuple[str, str, str | None]]] = {}
    for v in verdicts:
        pair = pair_of(v)
        if pair is None or pair[0] == pair[1]:
            continue
        a, b = pair
        by_judge.setdefault(v.judge, {})[(v.task, v.id, frozenset(pair))] = (a, b, judge_label(v, a, b))
    out = []
    for judge in sorted(by_judge):
        table = by_judge[judge]
        humans, machine, missing = [], [], 0
        for vote in votes:
            hit = table.get((vote.task, vote.item, frozenset((vote.left, vote.right))))
            if hit is None:
                continue
            a, b, label = hit
            if label is None:
                missing += 1
                continue
            humans.append(human_label(vote, a, b))
            machine.append(label)
        if not humans and not missing:
            continue
        out.append(_agreement(judge, humans, machine, missing))
    return out


def _agreement(judge: str, humans: list[str], machine: list[str], missing: int) -> Agreement:
    n = len(humans)
    same = sum(x == y for x, y in zip(humans, machine))
    decided = [(x, y) for x, y in zip(humans, machine) if x != "tie" and y != "tie"]
    return Agreement(
        judge=judge, n=n, agree=same / n if n else None, kappa=cohen_kappa(humans, machine),
        n_without_ties=len(decided),
        agree_without_ties=sum(x == y for x, y in decided) / len(decided) if decided else None,
        judge_missing=missing,
    )
