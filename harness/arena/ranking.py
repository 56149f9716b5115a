"""The arena's ranking: Bradley-Terry strengths by maximum likelihood, bootstrap intervals, the
win matrix and vote counts. Pure functions over votes (no files, no gradio).

Model (Bradley-Terry): P(i beats j) = 1 / (1 + exp(-(theta_i - theta_j))). Shown on the Elo
scale Chatbot Arena uses: rating = 1000 + 400 / ln(10) * theta, centred so that the models'
mean rating is 1000; 400 points apart means 10:1 odds, 100 points about 64:36.

Choices made here (docs/arena.md explains them to a reader):
- A tie counts as half a win for each side (the score is 1, 0.5 or 0).
- "Both bad" is counted in the vote counts and the win matrix but is NOT a Bradley-Terry
  comparison: it says nothing about which of the two is better.
- Regularisation: every model plays ``prior_games`` (default 1) virtual TIE against an anchor
  player of strength 0. That is a proper prior (log-density 0.5 log s(t) + 0.5 log s(-t) per
  virtual game), so the maximum exists and is finite even for a model with only wins or only
  losses, and it weighs as much as one real vote, so it fades as votes accumulate. With
  ``prior_games=0`` this is the plain MLE, which raises ``ValueError`` when it does not exist.
- Intervals: percentile bootstrap over the comparisons (votes resampled with replacement),
  ``rounds`` >= 500, with a seeded numpy generator: the same votes and seed give the same CIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from harness.arena.votes import Vote

ELO_SCALE = 400 / math.log(10)
ELO_CENTRE = 1000.0
MIN_ROUNDS = 500


@dataclass(frozen=True)
class Comparison:
    """One Bradley-Terry observation: ``score`` is a's points against b (1 win, 0.5 tie, 0 loss)."""

    a: str
    b: str
    score: float


@dataclass(frozen=True)
class Rating:
    """A model's place in the ranking; ``rating``/``ci`` are None for a model without comparisons."""

    model: str
    rating: float | None
    ci: tuple[float, float] | None
    theta: float | None  # log-strength, centred (mean 0 over the rated models)
    comparisons: int


def comparisons(votes: Sequence[Vote]) -> list[Comparison]:
    """The Bradley-Terry comparisons among ``votes``: left/right/tie votes; "both bad" is left out."""
    score = {"left": 1.0, "right": 0.0, "tie": 0.5}
    return [Comparison(v.left, v.right, score[v.choice]) for v in votes if v.choice in score]


def _points(comps: Sequence[Comparison], index: dict[str, int], weights: np.ndarray | None = None) -> np.ndarray:
    """k x k matrix: points[i, j] = what i scored against j (wins + half the ties), weighted."""
    k = len(index)
    pts = np.zeros((k, k))
    if not comps:
        return pts
    ia = np.array([index[c.a] for c in comps])
    ib = np.array([index[c.b] for c in comps])
    s = np.array([c.score for c in comps], dtype=float)
    w = np.ones(len(comps)) if weights is None else weights
    np.add.at(pts, (ia, ib), w * s)
    np.add.at(pts, (ib, ia), w * (1.0 - s))
    return pts


def _log_lik(theta: np.ndarray, pts: np.ndarray, prior_games: float) -> float:
    d = theta[:, None] - theta[None, :]
    ll = -float((pts * np.logaddexp(0.0, -d)).sum())
    if prior_games:
        ll -= prior_games * 0.5 * float((np.logaddexp(0.0, -theta) + np.logaddexp(0.0, theta)).sum())
    return ll


def fit_strengths(pts: np.ndarray, prior_games: float = 1.0, *, tol: float = 1e-10,
                  max_iter: int = 200) -> np.ndarray:
    """Bradley-Terry log-strengths (centred, mean 0) from a points matrix, by Newton's method with
    step halving on the (penalised) log-likelihood. ValueError when no finite maximum exists
    (``prior_games=0`` and a model that never lost or never won within its component)."""
    k = pts.shape[0]
    theta = np.zeros(k)
    games = pts + pts.T
    ll = _log_lik(theta, pts, prior_games)
    for _ in range(max_iter):
        p = expit(theta[:, None] - theta[None, :])
        s = expit(theta)
        grad = (pts - games * p).sum(axis=1) + prior_games * (0.5 - s)
        w = games * p * (1.0 - p)
        info = np.diag(w.sum(axis=1) + prior_games * s * (1.0 - s)) - w
        step = np.linalg.lstsq(info, grad, rcond=None)[0]
        t = 1.0
        while True:
            new = theta + t * step
            new_ll = _log_lik(new, pts, prior_games)
            if new_ll >= ll - 1e-12 or t < 1e-6:
                break
            t /= 2
        theta, ll = new, new_ll
        if np.abs(theta).max() > 40:
            break
        if np.abs(t * step).max() < tol:
            return theta - theta.mean()
    raise ValueError("the Bradley-Terry maximum likelihood estimate does not exist (a model with only wins "
                     "or only losses against the rest); use prior_games > 0")


def bradley_terry(models: Sequence[str], comps: Sequence[Comparison], *, prior_games: float = 1.0,
                  rounds: int = 1000, seed: int = 0) -> list[Rating]:
    """Ratings with percentile-bootstrap 95% intervals, highest first (unrated models last, in
    the given order). Models without any comparison get no rating."""
    if rounds < MIN_ROUNDS:
        raise ValueError(f"rounds={rounds}: the bootstrap needs at least {MIN_ROUNDS} rounds")
    unknown = sorted({m for c in comps for m in (c.a, c.b)} - set(models))
    if unknown:
        raise ValueError(f"comparisons name models that are not in the list: {', '.join(unknown)}")
    n_comps = {m: 0 for m in models}
    for c in comps:
        n_comps[c.a] += 1
        n_comps[c.b] += 1
    rated = [m for m in models if n_comps[m]]
    if not rated:
        return [Rating(m, None, None, None, 0) for m in models]
    index = {m: i for i, m in enumerate(rated)}
    theta = fit_strengths(_points(comps, index), prior_games)
    rng = np.random.default_rng(seed)
    boot = np.empty((rounds, len(rated)))
    n = len(comps)
    for r in range(rounds):
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(float)
        boot[r] = fit_strengths(_points(comps, index, counts), prior_games)
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    out = [Rating(m, to_elo(theta[i]), (to_elo(lo[i]), to_elo(hi[i])), float(theta[i]), n_comps[m])
           for m, i in index.items()]
    out.sort(key=lambda r: -r.theta)
    return out + [Rating(m, None, None, None, 0) for m in models if m not in index]


def to_elo(theta: float) -> float:
    return float(ELO_CENTRE + ELO_SCALE * theta)


def win_probability(rating_a: float, rating_b: float) -> float:
    """P(a beats b) implied by two Elo-scale ratings."""
    return 1.0 / (1.0 + 10 ** ((rating_b - rating_a) / 400))


def win_matrix(votes: Sequence[Vote], models: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
    """``{row: {col: {win, tie, loss, both_bad}}}``: the row model's votes against the column model,
    whichever side each was shown on."""
    out = {a: {b: {"win": 0, "tie": 0, "loss": 0, "both_bad": 0} for b in models if b != a} for a in models}
    for v in votes:
        if v.left not in out or v.right not in out:
            continue
        for me, other, side in ((v.left, v.right, "left"), (v.right, v.left, "right")):
            cell = out[me][other]
            if v.choice in ("tie", "both_bad"):
                cell[v.choice] += 1
            else:
                cell["win" if v.choice == side else "loss"] += 1
    return out


def vote_counts(votes: Sequence[Vote], models: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per model: ``votes`` (times shown in a voted pair), ``win``, ``tie``, ``loss``, ``both_bad``."""
    matrix = win_matrix(votes, models)
    out = {}
    for m in models:
        cells = matrix[m].values()
        tot = {k: sum(c[k] for c in cells) for k in ("win", "tie", "loss", "both_bad")}
        out[m] = {"votes": sum(tot.values()), **tot}
    return out
