"""Perplexity and bits-per-byte from summed token negative log-likelihoods (nats).

The Engine computes each sample's summed NLL and token count with the model's own loss;
these pure functions turn them into numbers. A corpus perplexity is token-weighted:
``exp(total NLL / total tokens)``, not the mean of per-sample perplexities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.metrics.registry import LOWER, Answers, metric
from harness.records import MetricValue


@metric(
    "perplexity",
    kind="corpus",
    description="token-weighted perplexity of the reference under the model (computed by the Engine)",
    outputs={"perplexity": LOWER, "bits_per_byte": LOWER},
)
def perplexity_metric(answers: Answers) -> dict[str, list[float | None]]:
    """Nothing to compute from the answers' text: the generate stage stores each sample's summed
    reference NLL, token and byte counts from the Engine (``nll``, ``nll_tokens``, ``nll_bytes``),
    and the score stage turns them into corpus perplexity and bits per byte with intervals."""
    return {}


def perplexity(nll_sum: float, n_tokens: int) -> float | None:
    """``exp(nll_sum / n_tokens)``; None when there are no tokens."""
    if n_tokens is None or n_tokens <= 0 or nll_sum is None:
        return None
    return math.exp(nll_sum / n_tokens)


def bits_per_byte(nll_sum_nats: float, n_bytes: int) -> float | None:
    """Summed NLL converted from nats to bits, per UTF-8 byte of the scored text
    (``nll / (n_bytes * ln 2)``); None when there are no bytes."""
    if n_bytes is None or n_bytes <= 0 or nll_sum_nats is None:
        return None
    return nll_sum_nats / (n_bytes * math.log(2))


def sample_perplexities(
    nll_sums: Sequence[float | None], n_tokens: Sequence[int | None]
) -> list[float | None]:
    """Per-sample perplexity; None where a sample has no NLL or no tokens."""
    if len(nll_sums) != len(n_tokens):
        raise ValueError(f"{len(nll_sums)} NLL sums but {len(n_tokens)} token counts")
    return [perplexity(s, t) for s, t in zip(nll_sums, n_tokens)]


def _present(nll_sums, counts):
    if len(nll_sums) != len(counts):
        raise ValueError(f"{len(nll_sums)} NLL sums but {len(counts)} counts")
    return [(s, c) for s, c in zip(nll_sums, counts) if s is not None and c is not None and c > 0]


def corpus_perplexity(nll_sums: Sequence[float | None], n_tokens: Sequence[int | None]) -> float | None:
    """Token-weighted corpus perplexity ``exp(sum NLL / sum tokens)`` over samples that have
    both; None when none do."""
    pairs = _present(nll_sums, n_tokens)
    if not pairs:
        return None
    return math.exp(sum(s for s, _ in pairs) / sum(c for _, c in pairs))


def corpus_bits_per_byte(nll_sums: Sequence[float | None], n_bytes: Sequence[int | None]) -> float | None:
    """Byte-weighted corpus bits-per-byte ``sum NLL / (sum bytes * ln 2)``; None when empty."""
    pairs = _present(nll_sums, n_bytes)
    if not pairs:
        return None
    return sum(s for s, _ in pairs) / (sum(c for _, c in pairs) * math.log(2))


def _aggregate_corpus(nums, dens, score_fn, n_resamples: int, alpha: float, seed: int) -> MetricValue:
    """A lower-is-better corpus metric ``score_fn(sum num, sum den)`` with a bootstrap interval
    that resamples samples; samples without a numerator or denominator count as missing."""
    from harness.metrics.stats import bootstrap_sufficient

    pairs = _present(nums, dens)
    missing = len(nums) - len(pairs)
    if not pairs:
        return MetricValue(value=None, ci=None, n=0, missing=missing, higher_is_better=False)
    ci = bootstrap_sufficient([[s, c] for s, c in pairs], lambda row: score_fn(row[0], row[1]),
                              n_resamples=n_resamples, alpha=alpha, seed=seed)
    value = score_fn(sum(s for s, _ in pairs), sum(c for _, c in pairs))
    return MetricValue(value=value, ci=ci.as_ci(), n=len(pairs), missing=missing, higher_is_better=False,
                       ci_method="bootstrap")


def aggregate_perplexity(
    nll_sums: Sequence[float | None],
    n_tokens: Sequence[int | None],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> MetricValue:
    """Corpus perplexity as a MetricValue (lower is better) with a bootstrap interval that
    resamples samples and recomputes ``exp(sum NLL / sum tokens)``. Samples without NLL or
    tokens count as missing."""
    return _aggregate_corpus(nll_sums, n_tokens, perplexity, n_resamples, alpha, seed)


def aggregate_bits_per_byte(
    nll_sums: Sequence[float | None],
    n_bytes: Sequence[int | None],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> MetricValue:
    """Corpus bits per byte (``sum NLL / (sum bytes * ln 2)``, lower is better) with its
    bootstrap interval; comparable across tokenizers."""
    return _aggregate_corpus(nll_sums, n_bytes, bits_per_byte, n_resamples, alpha, seed)
