"""Perplexity / bits-per-byte aggregation from summed NLLs."""

from __future__ import annotations

import math

import pytest

from harness.metrics import perplexity as pp


def test_perplexity_and_bpb():
    assert pp.perplexity(0.0, 5) == 1.0
    assert pp.perplexity(10 * math.log(4), 10) == pytest.approx(4.0)
    assert pp.perplexity(1.0, 0) is None
    # 1 bit per byte: nll = n_bytes * ln 2
    assert pp.bits_per_byte(8 * math.log(2), 8) == pytest.approx(1.0)
    assert pp.bits_per_byte(3.0, 0) is None


def test_corpus_perplexity_is_token_weighted():
    nll = [2.0, 30.0, None, 1.0]
    toks = [1, 10, 4, 0]
    # samples 3 (no NLL) and 4 (no tokens) are skipped
    assert pp.corpus_perplexity(nll, toks) == pytest.approx(math.exp(32.0 / 11))
    per = pp.sample_perplexities(nll, toks)
    assert per[0] == pytest.approx(math.exp(2.0)) and per[1] == pytest.approx(math.exp(3.0))
    assert per[2] is None and per[3] is None
    # not the mean of per-sample perplexities
    assert pp.corpus_perplexity(nll, toks) != pytest.approx((per[0] + per[1]) / 2)
    assert pp.corpus_bits_per_byte([8 * math.log(2), 0.0], [4, 4]) == pytest.approx(1.0)
    assert pp.corpus_perplexity([None], [3]) is None


def test_aggregate_perplexity():
    nll = [3.0 + 0.1 * i for i in range(30)] + [None]
    toks = [2 + i % 3 for i in range(30)] + [5]
    mv = pp.aggregate_perplexity(nll, toks, n_resamples=300)
    assert mv.higher_is_better is False and mv.n == 30 and mv.missing == 1
    assert mv.value == pytest.approx(pp.corpus_perplexity(nll, toks))
    assert mv.ci[0] <= mv.value <= mv.ci[1] and mv.ci[0] < mv.ci[1]
    assert pp.aggregate_perplexity([None], [1]).value is None
    with pytest.raises(ValueError):
        pp.sample_perplexities([1.0], [1, 2])
