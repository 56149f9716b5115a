"""Bootstrap intervals, aggregates and paired tests: coverage, power, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.metrics import stats
from harness.records import MetricValue, PairedTest


def test_bootstrap_ci_contains_estimate_and_shrinks():
    rng = np.random.default_rng(1)
    small = rng.normal(0.5, 0.2, 30)
    big = rng.normal(0.5, 0.2, 1000)
    ci_s = stats.bootstrap_ci(small)
    ci_b = stats.bootstrap_ci(big)
    assert ci_s.lo <= small.mean() <= ci_s.hi
    assert ci_b.lo <= big.mean() <= ci_b.hi
    assert (ci_b.hi - ci_b.lo) < (ci_s.hi - ci_s.lo) / 3  # ~ sqrt(1000/30) = 5.8x narrower
    # close to the normal-theory interval
    se = big.std(ddof=1) / math.sqrt(len(big))
    assert (ci_b.hi - ci_b.lo) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_ci_missing_values_and_seed():
    vals = [1.0, None, 0.0, float("nan"), 1.0, 1.0]
    a = stats.bootstrap_ci(vals, seed=7)
    b = stats.bootstrap_ci(vals, seed=7)
    c = stats.bootstrap_ci([1.0, 0.0, 1.0, 1.0], seed=7)
    assert tuple(a) == tuple(b) == tuple(c)
    assert a.n == 4 and a.missing == 2
    lo, hi = a  # unpacks as a plain pair
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    assert tuple(stats.bootstrap_ci(np.random.default_rng(0).random(50), seed=1)) != tuple(
        stats.bootstrap_ci(np.random.default_rng(0).random(50), seed=2)
    )
    empty = stats.bootstrap_ci([None, None])
    assert empty.n == 0 and empty.missing == 2 and empty.as_ci() is None


def test_bootstrap_ci_custom_stat_without_axis():
    vals = list(np.random.default_rng(3).random(40))
    via_axis = stats.bootstrap_ci(vals, np.median, n_resamples=200, seed=5)
    via_loop = stats.bootstrap_ci(vals, lambda x: float(np.median(x)), n_resamples=200, seed=5)
    assert tuple(via_axis) == pytest.approx(tuple(via_loop))


def test_bootstrap_corpus_and_sufficient_agree():
    # a ratio metric: sum(a) / sum(b), as perplexity/BLEU-style corpus scores are
    rng = np.random.default_rng(0)
    a, b = rng.integers(1, 10, 25), rng.integers(10, 20, 25)
    items = list(range(25))
    slow = stats.bootstrap_corpus(
        items, items, lambda p, r: a[p].sum() / b[r].sum(), n_resamples=300, seed=11
    )
    fast = stats.bootstrap_sufficient(
        np.stack([a, b], 1), lambda row: row[0] / row[1], n_resamples=300, seed=11
    )
    assert tuple(slow) == pytest.approx(tuple(fast))
    assert slow.lo <= a.sum() / b.sum() <= slow.hi


def test_aggregate():
    mv = stats.aggregate([1, 0, 1, 1, None], higher_is_better=True)
    assert isinstance(mv, MetricValue)
    assert mv.value == pytest.approx(0.75) and mv.n == 4 and mv.missing == 1
    assert mv.stderr == pytest.approx(np.std([1, 0, 1, 1], ddof=1) / 2)
    assert mv.ci[0] <= mv.value <= mv.ci[1]
    assert MetricValue.from_dict(mv.to_dict()) == mv
    none = stats.aggregate([None], higher_is_better=False)
    assert none.value is None and none.ci is None and none.missing == 1 and not none.higher_is_better
    one = stats.aggregate([0.3])
    assert one.value == 0.3 and one.stderr is None and one.ci == (0.3, 0.3)


def test_paired_bootstrap_finds_planted_difference_and_not_null():
    rng = np.random.default_rng(42)
    base = rng.uniform(0.2, 0.8, 200)
    a = base + 0.1 + rng.normal(0, 0.2, 200)
    b = base + rng.normal(0, 0.2, 200)
    res = stats.paired_bootstrap(a, b, seed=0)
    assert res["test"] == "paired-bootstrap" and res["n"] == 200
    assert res["diff"] == pytest.approx(float(np.mean(a - b)))
    assert res["ci"][0] > 0 and res["p_value"] < 0.05
    assert res["ci"][0] <= res["diff"] <= res["ci"][1]
    null_a = base + rng.normal(0, 0.2, 200)
    null = stats.paired_bootstrap(null_a, b, seed=0)
    assert null["ci"][0] < 0 < null["ci"][1] and null["p_value"] > 0.05
    # swapping a and b flips the sign, same p
    flipped = stats.paired_bootstrap(b, a, seed=0)
    assert flipped["diff"] == pytest.approx(-res["diff"])
    # identical models: p = 1
    assert stats.paired_bootstrap(b, b)["p_value"] == 1.0


def test_paired_bootstrap_uses_only_samples_both_have():
    a = [1.0, None, 0.5, 0.2]
    b = [0.0, 0.3, None, 0.1]
    res = stats.paired_bootstrap(a, b)
    assert res["n"] == 2 and res["diff"] == pytest.approx(((1 - 0) + (0.2 - 0.1)) / 2)
    assert stats.paired_bootstrap([None], [1.0])["diff"] is None
    with pytest.raises(HarnessError, match="same samples"):
        stats.paired_bootstrap([1.0], [1.0, 2.0])


def test_mcnemar_exact_against_hand_computation():
    # a right / b wrong on 6 items, a wrong / b right on 1, 10 concordant
    a = [1] * 6 + [0] * 1 + [1] * 5 + [0] * 5
    b = [0] * 6 + [1] * 1 + [1] * 5 + [0] * 5
    stat, p = stats.mcnemar(a, b)
    # exact two-sided binomial: 2 * P(X <= 1), X ~ Bin(7, 0.5) = 2 * (1 + 7) / 128
    assert stat == 1.0
    assert p == pytest.approx(2 * (1 + 7) / 2**7)
    assert stats.mcnemar(b, a)[1] == pytest.approx(p)


def test_mcnemar_chi2_against_hand_computation():
    # b = 30, c = 12 discordant pairs -> chi-square with continuity correction
    a = [1] * 30 + [0] * 12 + [1] * 20
    b = [0] * 30 + [1] * 12 + [1] * 20
    stat, p = stats.mcnemar(a, b)
    expected = (abs(30 - 12) - 1) ** 2 / (30 + 12)  # statsmodels mcnemar(exact=False, correction=True)
    assert stat == pytest.approx(expected)
    # chi2(1) survival = erfc(sqrt(x / 2))
    assert p == pytest.approx(math.erfc(math.sqrt(expected / 2)))
    assert stats.mcnemar([1, 0], [1, 0]) == (0.0, 1.0)
    with pytest.raises(HarnessError, match="0/1"):
        stats.mcnemar([0.5, 1], [1, 1])


def test_compare_models_pairs_and_tests():
    rng = np.random.default_rng(0)
    n = 200
    base = list(rng.normal(0.4, 0.2, n))
    sft = [x + 0.1 + e for x, e in zip(base, rng.normal(0, 0.2, n))]
    dpo = [x + e for x, e in zip(sft, rng.normal(0, 0.2, n))]
    tests = stats.compare_models({"base": base, "sft": sft, "dpo": dpo}, "rougeL", binary=False)
    assert [(t.a, t.b) for t in tests] == [("sft", "base"), ("dpo", "base"), ("dpo", "sft")]
    assert all(
        isinstance(t, PairedTest) and t.test == "paired-bootstrap" and t.metric == "rougeL" for t in tests
    )
    by = {(t.a, t.b): t for t in tests}
    assert by[("sft", "base")].significant and by[("dpo", "base")].significant
    assert not by[("dpo", "sft")].significant
    assert PairedTest.from_dict(tests[0].to_dict()).diff == tests[0].diff

    em_base = [1] * 40 + [0] * 60
    em_sft = [1] * 40 + [1] * 20 + [0] * 40  # 20 more right, none lost
    bt = stats.compare_models({"base": em_base, "sft": em_sft}, "exact_match", binary=True)
    assert len(bt) == 1 and bt[0].test == "mcnemar" and bt[0].significant
    assert bt[0].p_value == pytest.approx(stats.mcnemar(em_sft, em_base)[1])
    assert bt[0].diff == pytest.approx(0.2)


def test_compare_models_is_deterministic():
    rng = np.random.default_rng(9)
    pm = {"base": list(rng.random(50)), "sft": list(rng.random(50))}
    t1 = stats.compare_models(pm, "m", binary=False, seed=3)
    t2 = stats.compare_models(pm, "m", binary=False, seed=3)
    assert [t.to_dict() for t in t1] == [t.to_dict() for t in t2]


def test_paired_bootstrap_sufficient_corpus_perplexity():
    """Paired corpus bootstrap: the diff is the corpus-level difference, a planted gap is found,
    and two identical models give diff 0 and p = 1."""
    import math

    import numpy as np

    from harness.metrics.stats import paired_bootstrap_sufficient

    rng = np.random.default_rng(1)
    toks = rng.integers(3, 20, size=120).astype(float)
    nll_b = toks * rng.normal(2.0, 0.3, size=120)
    nll_a = nll_b - toks * 0.5  # a is better by 0.5 nats per token
    fn = lambda row: math.exp(row[0] / row[1])
    a = np.stack([nll_a, toks], axis=1)
    b = np.stack([nll_b, toks], axis=1)
    res = paired_bootstrap_sufficient(a, b, fn, seed=0)
    assert res["diff"] == pytest.approx(fn(a.sum(0)) - fn(b.sum(0)))
    assert res["ci"][1] < 0 and res["p_value"] < 0.05
    same = paired_bootstrap_sufficient(b, b, fn, seed=0)
    assert same["diff"] == 0 and same["p_value"] == 1.0


def test_too_few_shared_samples_are_never_significant():
    """With one or two shared samples the bootstrap has no spread: no 'significant' claim."""
    from harness.metrics.stats import MIN_PAIRED_N, compare_models

    tiny = compare_models({"base": [0.0, 0.0], "sft": [100.0, 100.0]}, "judge")
    assert tiny[0].diff == 100.0 and not tiny[0].significant
    enough = compare_models({"base": [0.0] * MIN_PAIRED_N, "sft": [100.0] * MIN_PAIRED_N}, "judge")
    assert enough[0].significant


# Published Wilson score intervals (95%): Newcombe (1998), Stat. Med. 17:857, Table I, method 3
# (81/263, 15/148, 0/20, 1/29), and the values statsmodels' proportion_confint(method="wilson") gives.
WILSON_REFERENCE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (15, 15, 0.7961, 1.0),
    (0, 10, 0.0, 0.2775),
    (8, 10, 0.4902, 0.9433),
]


@pytest.mark.parametrize("k,n,lo,hi", WILSON_REFERENCE)
def test_wilson_ci_matches_published_values(k, n, lo, hi):
    ci = stats.wilson_ci(k, n)
    assert ci.lo == pytest.approx(lo, abs=6e-5) and ci.hi == pytest.approx(hi, abs=6e-5)
    assert ci.n == n
    assert 0.0 <= ci.lo <= k / n <= ci.hi <= 1.0


def test_wilson_ci_edges_and_errors():
    assert stats.wilson_ci(0, 0).as_ci() is None
    assert stats.wilson_ci(15, 15, alpha=0.1).lo > stats.wilson_ci(15, 15).lo  # 90% is narrower
    with pytest.raises(HarnessError):
        stats.wilson_ci(3, 2)
    with pytest.raises(HarnessError):
        stats.wilson_ci(1, 2, alpha=1.5)


def test_aggregate_uses_wilson_for_binary_metrics_and_says_so():
    perfect = stats.aggregate([1.0] * 15, binary=True)
    assert perfect.value == 1.0 and perfect.ci == pytest.approx((0.7961, 1.0), abs=1e-4)
    assert perfect.ci_method == "wilson"
    # the bootstrap would have said [1, 1]: certainty from 15 items
    assert stats.aggregate([1.0] * 15).ci == (1.0, 1.0) and stats.aggregate([1.0] * 15).ci_method == "bootstrap"
    with_missing = stats.aggregate([1, 0, None, 1, float("nan")], binary=True)
    assert with_missing.n == 3 and with_missing.missing == 2
    assert with_missing.ci == tuple(stats.wilson_ci(2, 3))
    # a "binary" metric whose values are not all 0/1 keeps the bootstrap (never a wrong Wilson)
    odd = stats.aggregate([1.0, 0.5, 0.0], binary=True)
    assert odd.ci_method == "bootstrap"
    # continuous metrics are unchanged
    cont = stats.aggregate([0.2, 0.4, 0.9], seed=3)
    assert cont.ci_method == "bootstrap" and cont.ci == tuple(stats.bootstrap_ci([0.2, 0.4, 0.9], seed=3))
    assert MetricValue.from_dict(perfect.to_dict()) == perfect
    assert MetricValue.from_dict({"value": 0.5}).ci_method is None  # runs scored before it was recorded


def test_report_rows_show_the_wilson_interval():
    from harness.records import Coverage
    from harness.report.rows import metric_rows

    group = {"models": {m: {"exact_match": stats.aggregate([1.0] * 15, binary=True).to_dict()} for m in ("a", "b")},
             "paired": []}
    (row,) = metric_rows("t", group, ["a", "b"], coverage=Coverage())
    assert row.value_text(row.cells[0]) == "1.000 [0.796, 1.000]"
    assert row.ci_text(row.cells[1]) == "[0.796, 1.000]"
