"""The report's Arena section: human votes from ``<run>/arena/votes.jsonl`` ranked by
Bradley-Terry with bootstrap intervals, the win matrix, vote counts, and how each pairwise judge
agrees with the humans. Built only when the run has votes (``arena_section`` returns None otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.arena.agreement import Agreement, judge_human_agreement
from harness.arena.ranking import MIN_ROUNDS, Rating, bradley_terry, comparisons, vote_counts, win_matrix
from harness.arena.votes import read_votes
from harness.records import Verdict
from harness.report.rows import fmt
from harness.store import RunDir

PRIOR_GAMES = 1.0


@dataclass
class ArenaSection:
    """What the report shows about the arena votes."""

    models: list[str]
    n_votes: int
    n_voters: int
    n_both_bad: int
    n_comparisons: int
    ratings: list[Rating]
    rounds: int
    seed: int
    matrix: dict[str, dict[str, dict[str, int]]]
    counts: dict[str, dict[str, int]]
    agreement: list[Agreement]
    skipped: list[str] = field(default_factory=list)
    prior_games: float = PRIOR_GAMES


def arena_section(run: RunDir, models: list[str]) -> ArenaSection | None:
    """The section for ``run`` (models in report order, then any others the votes name); None
    when nobody voted."""
    log = read_votes(run.arena_votes_path())
    if not log.votes and not log.skipped:
        return None
    order = list(models) + [m for v in log.votes for m in (v.left, v.right) if m not in models]
    order = list(dict.fromkeys(order))
    cfg = run.config()
    seed = int(cfg.get("seed") or 0)
    rounds = max(MIN_ROUNDS, int(cfg.get("bootstrap_resamples") or 1000))
    comps = comparisons(log.votes)
    return ArenaSection(
        models=order, n_votes=len(log.votes), n_voters=len({v.voter for v in log.votes}),
        n_both_bad=sum(v.choice == "both_bad" for v in log.votes), n_comparisons=len(comps),
        ratings=bradley_terry(order, comps, prior_games=PRIOR_GAMES, rounds=rounds, seed=seed),
        rounds=rounds, seed=seed, matrix=win_matrix(log.votes, order), counts=vote_counts(log.votes, order),
        agreement=judge_human_agreement(log.votes, _pairwise_verdicts(run)), skipped=log.skipped,
    )


def _pairwise_verdicts(run: RunDir) -> list[Verdict]:
    out: list[Verdict] = []
    for judge, who, task, _ in run.verdict_files():
        if "_vs_" in who:
            out += run.verdicts(judge, who, task)
    return out


def pct(x: float | None) -> str:
    return "–" if x is None else f"{fmt(100 * x, 0)}%"


def rating_text(r: Rating) -> tuple[str, str]:
    """(rating, "[lo, hi]") as text; dashes for a model without comparisons."""
    if r.rating is None or r.ci is None:
        return "–", "no votes"
    return f"{r.rating:.0f}", f"[{r.ci[0]:.0f}, {r.ci[1]:.0f}]"


def matrix_cell(rec: dict[str, int] | None) -> str:
    if rec is None:
        return "—"
    text = f"{rec['win']} / {rec['tie']} / {rec['loss']}"
    return text + (f" ({rec['both_bad']} both bad)" if rec["both_bad"] else "")


def legend(sec: ArenaSection) -> str:
    return (f"Bradley-Terry maximum likelihood on the Elo scale (mean 1000; +100 ≈ 64% expected wins), "
            f"ties = half a win each, \"both bad\" counted but not ranked; 95% percentile bootstrap over "
            f"votes ({sec.rounds} rounds, seed {sec.seed}); each model also plays {sec.prior_games:g} virtual "
            f"tie against an average player so a model with only wins or only losses gets a finite rating.")


def agreement_note() -> str:
    return ("Judge–human agreement on the (item, model pair)s both rated; \"both bad\" counts as a tie. "
            "For scale (MT-Bench): two humans agree 63% with ties, 81% without.")


def arena_markdown(sec: ArenaSection | None, esc: Any, table: Any) -> list[str]:
    """The Markdown lines of the section (``esc`` escapes untrusted text, ``table`` makes a GFM table)."""
    if sec is None:
        return []
    out = ["## Arena", "",
           (f"{sec.n_votes} human votes from {sec.n_voters} voter(s): {sec.n_comparisons} ranked, "
            f"{sec.n_both_bad} both bad."), "", legend(sec), ""]
    rows = []
    for i, r in enumerate(sec.ratings, 1):
        value, ci = rating_text(r)
        rows.append([str(i) if r.rating is not None else "–", f"**{esc(r.model)}**", value, ci, str(r.comparisons)])
    out += [table(["rank", "model", "rating", "95% CI", "ranked votes"], rows), ""]
    out += ["Row model against column model: win / tie / loss.", ""]
    mrows = [[f"**{esc(a)}**", *[("—" if a == b else matrix_cell(sec.matrix[a].get(b))) for b in sec.models]]
             for a in sec.models]
    out += [table(["", *[esc(m) for m in sec.models]], mrows), ""]
    crows = [[f"**{esc(m)}**", *[str(sec.counts[m][k]) for k in ("votes", "win", "tie", "loss", "both_bad")]]
             for m in sec.models]
    out += [table(["model", "votes", "won", "tied", "lost", "both bad"], crows), ""]
    if sec.agreement:
        out += [agreement_note(), ""]
        arows = [[esc(a.judge), str(a.n), pct(a.agree), fmt(a.kappa, 2) if a.kappa is not None else "–",
                  f"{pct(a.agree_without_ties)} (n {a.n_without_ties})", str(a.judge_missing)] for a in sec.agreement]
        out += [table(["judge", "n", "agreement", "Cohen's κ", "agreement without ties", "judge missing"],
                       arows), ""]
    else:
        out += ["_No pairwise judge verdict covers a voted pair: no judge–human agreement._", ""]
    for s in sec.skipped:
        out += [f"> **WARNING:** {esc(s)}", ""]
    return out

