"""The judge's reliability card (scores.json ``judge_reliability``) as table rows for
report.md and report.html: one row per figure, one column per judge, each with its n; a
figure that could not be computed shows "–" and why, never 0."""

from __future__ import annotations

from typing import Any

FIGURES = [  # key, label, what it means
    ("missing", "missing", "verdicts with no score or winner"),
    ("parse_failure", "parse failures", "no reply could be read"),
    ("logprob_share", "scored from log-probs", "verdicts read from token probabilities"),
    ("position_consistency", "position consistency", "same verdict with A/B swapped (MT-Bench GPT-4: 65%)"),
    ("first_slot", "first-slot share", "decided verdicts choosing the answer shown first (0.5 = unbiased)"),
    ("tie_rate", "tie rate", "order verdicts that were a tie"),
    ("flip_rate", "flip rate", "items whose repeated verdicts disagreed"),
    ("length_effect", "length effect", "log-odds of preferring an answer per 100 characters longer"),
    ("length_controlled", "length-controlled win rate", "win rate predicted at equal length (raw in brackets)"),
]


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def cell(key: str, fig: dict[str, Any] | None) -> str:
    if not isinstance(fig, dict):
        return "–"
    if key == "length_controlled" and isinstance(fig.get("pairs"), dict):
        return "; ".join(f"{p.replace('_vs_', ' vs ')} {_pct(r['value'])} (raw {_pct(r['raw'])}, n={r['n']})"
                         for p, r in fig["pairs"].items())
    value = fig.get("value")
    if not isinstance(value, (int, float)):
        return f"– ({fig.get('reason') or 'not computed'})"
    n = fig.get("n", 0)
    if key == "length_effect":
        ci = fig.get("ci") or [value, value]
        return f"{value:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] (n={n})"
    count = fig.get("count")
    return f"{_pct(value)} ({count}/{n})" if count is not None else f"{_pct(value)} (n={n})"


def card_rows(card: dict[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the card; no rows when there is no card."""
    judges = (card or {}).get("judges") or {}
    if not judges:
        return [], []
    header = ["figure", *judges, "meaning"]
    rows = [[label, *(cell(key, (j.get("figures") or {}).get(key)) for j in judges.values()), meaning]
            for key, label, meaning in FIGURES]
    return header, rows


def self_preference_line(card: dict[str, Any] | None) -> str | None:
    sp = (card or {}).get("self_preference") or {}
    if sp.get("value") is None:
        return None
    return ("Self-preference risk: " if sp["value"] else "Self-preference: none: ") + str(sp.get("reason", ""))
