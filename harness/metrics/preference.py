"""Preference metrics: does a model give the chosen answer a higher likelihood than the rejected one?

The Engine computes each answer's summed log-probability given the prompt (``token_nll``: the
answer's tokens only, followed by the prompt format's end-of-turn marker); these pure functions
turn a pair of them into per-pair values, which the score stage aggregates with intervals and
paired tests like any other per-sample metric:

- ``pref_acc``: 1 when log p(chosen) > log p(rejected) (a tie counts 0), summed over tokens;
- ``pref_acc_norm``: the same on the mean log-probability per token (length-normalised, so a
  long rejected answer is not rejected merely for being long);
- ``logp_margin`` / ``logp_margin_norm``: log p(chosen) - log p(rejected), summed / per token;
- ``dpo_reward_margin``: DPO's implicit reward margin against a reference model,
  ``beta * ((logp_c - ref_c) - (logp_r - ref_r))``, and ``dpo_reward_acc`` (1 when it is > 0:
  trl's ``rewards/accuracies``), only for a model with a reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.metrics.registry import HIGHER, Answers, metric

DEFAULT_BETA = 0.1  # trl's DPOConfig default; used when no training manifest gives the model's beta


@metric(
    "preference",
    description="preference accuracy (chosen answer more likely than rejected; raw and per token), "
    "log-likelihood margins, and the implicit DPO reward margin against a reference model "
    "(a preference task's metric; computed by the Engine)",
    outputs={"pref_acc": HIGHER, "pref_acc_norm": HIGHER, "logp_margin": HIGHER, "logp_margin_norm": HIGHER,
             "dpo_reward_margin": HIGHER, "dpo_reward_acc": HIGHER},
    binary=("pref_acc", "pref_acc_norm", "dpo_reward_acc"),
)
def preference_metric(answers: Answers) -> dict[str, list[float | None]]:
    """Nothing to compute from answer text: the preference stage scores both answers of each row
    through the model's Engine and stores ``pair_values`` per row."""
    return {}


@dataclass(frozen=True)
class AnswerLogprob:
    """One answer's log-probability given the prompt: summed over its tokens, and the token count."""

    logprob: float
    n_tokens: int

    @property
    def per_token(self) -> float | None:
        return self.logprob / self.n_tokens if self.n_tokens else None


def pair_values(chosen: AnswerLogprob, rejected: AnswerLogprob, *, ref_chosen: AnswerLogprob | None = None,
                ref_rejected: AnswerLogprob | None = None, beta: float = DEFAULT_BETA) -> dict[str, float | None]:
    """The per-pair outputs of the ``preference`` metric (see the module docstring); the DPO reward
    values only when both reference log-probabilities are given."""
    c_norm, r_norm = chosen.per_token, rejected.per_token
    out: dict[str, float | None] = {
        "pref_acc": float(chosen.logprob > rejected.logprob),
        "pref_acc_norm": None if c_norm is None or r_norm is None else float(c_norm > r_norm),
        "logp_margin": chosen.logprob - rejected.logprob,
        "logp_margin_norm": None if c_norm is None or r_norm is None else c_norm - r_norm,
    }
    if ref_chosen is not None and ref_rejected is not None:
        reward = dpo_reward_margin(chosen.logprob, rejected.logprob, ref_chosen.logprob, ref_rejected.logprob, beta)
        out["dpo_reward_margin"] = reward
        out["dpo_reward_acc"] = float(reward > 0)
    return out


def dpo_reward_margin(logp_chosen: float, logp_rejected: float, ref_chosen: float, ref_rejected: float,
                      beta: float = DEFAULT_BETA) -> float:
    """DPO's implicit reward of chosen minus that of rejected:
    ``beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))``."""
    return beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))


def preference_accuracy(logp_chosen: Sequence[float], logp_rejected: Sequence[float]) -> float:
    """Share of pairs whose chosen answer has the higher log-probability (ties count as wrong)."""
    if len(logp_chosen) != len(logp_rejected):
        raise ValueError(f"{len(logp_chosen)} chosen but {len(logp_rejected)} rejected log-probabilities")
    if not logp_chosen:
        raise ValueError("preference_accuracy: no pairs")
    return sum(c > r for c, r in zip(logp_chosen, logp_rejected)) / len(logp_chosen)
