"""The blind human arena (``harness arena RUN``): two anonymous answers from the run's stored
samples, a human vote, then the names; the votes ranked for the report.

- ``votes``:     ``Vote``, ``append_vote`` (one fsync'd line each), ``read_votes`` (torn lines skipped with a warning)
- ``pool``:      ``ArenaPool`` (the run's answers per prompt item, input checks), ``Matchup``
- ``ranking``:   Bradley-Terry (MLE, ties as half wins, a one-virtual-tie prior), bootstrap CIs, win matrix, counts
- ``agreement``: judge–human agreement and Cohen's kappa on the pairs both rated
- ``app``:       the Gradio page and ``serve`` (gradio imported only there, inside the functions)
"""

from harness.arena.agreement import Agreement, cohen_kappa, judge_human_agreement
from harness.arena.pool import ArenaPool, Matchup
from harness.arena.ranking import (
    Comparison,
    Rating,
    bradley_terry,
    comparisons,
    fit_strengths,
    vote_counts,
    win_matrix,
)
from harness.arena.votes import CHOICES, Vote, VoteLog, append_vote, make_vote, read_votes

__all__ = [
    "CHOICES", "Agreement", "ArenaPool", "Comparison", "Matchup", "Rating", "Vote", "VoteLog", "append_vote",
    "bradley_terry", "cohen_kappa", "comparisons", "fit_strengths", "judge_human_agreement", "make_vote",
    "read_votes", "vote_counts", "win_matrix",
]
