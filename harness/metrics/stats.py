"""Statistics over per-sample scores: Wilson and bootstrap intervals, aggregates and paired model tests.

Everything here is pure and seeded: the same inputs and ``seed`` give the same numbers.
Missing values (``None`` or NaN) are never treated as zero; they are dropped and counted.
Paired tests only use the samples that both models have.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from harness.errors import HarnessError
from harness.records import MetricValue, PairedTest

# Upper bound on resample-matrix cells materialised at once (keeps memory flat on big tasks).
_CHUNK_CELLS = 2_000_000


class Interval(tuple):
    """A ``(lo, hi)`` percentile interval that also carries ``n`` (values used) and
    ``missing`` (values dropped). ``lo``/``hi`` are NaN when nothing could be scored."""

    n: int
    missing: int

    def __new__(cls, lo: float, hi: float, n: int = 0, missing: int = 0):
        self = super().__new__(cls, (float(lo), float(hi)))
        self.n = int(n)
        self.missing = int(missing)
        return self

    @property
    def lo(self) -> float:
        return self[0]

    @property
    def hi(self) -> float:
        return self[1]

    def as_ci(self) -> tuple[float, float] | None:
        """The interval as stored in a MetricValue: None when it is undefined."""
        if math.isnan(self[0]) or math.isnan(self[1]):
            return None
        return (self[0], self[1])


def clean(values: Sequence[float | None]) -> tuple[np.ndarray, int]:
    """The present values as a float array, and how many were missing (None or NaN)."""
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    present = ~np.isnan(arr)
    return arr[present], int((~present).sum())


def _resample_stats(data: np.ndarray, stat: Callable, n_resamples: int, rng) -> np.ndarray:
    """``stat`` of ``n_resamples`` bootstrap resamples of the rows of ``data`` (1-D values)."""
    n = len(data)
    out = np.empty(n_resamples, dtype=float)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        sampled = data[idx]
        try:
            vals = np.asarray(stat(sampled, axis=1), dtype=float)
            if vals.shape != (stop - start,):
                raise TypeError
        except TypeError:
            vals = np.array([float(stat(row)) for row in sampled], dtype=float)
        out[start:stop] = vals
    return out


def _percentiles(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _check_alpha(alpha: float, n_resamples: int) -> None:
    if not 0 < alpha < 1:
        raise HarnessError(f"alpha must be in (0, 1), got {alpha}", fix="Use e.g. alpha: 0.05.")
    if n_resamples < 1:
        raise HarnessError(f"n_resamples must be >= 1, got {n_resamples}", fix="Use e.g. n_resamples: 1000.")


def bootstrap_ci(
    values: Sequence[float | None],
    stat: Callable = np.mean,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``stat`` over the present values.

    ``stat`` is called as ``stat(matrix, axis=1)`` when it accepts ``axis`` (numpy reducers),
    otherwise once per resample. Missing values are dropped and counted in ``.missing``.
    """
    _check_alpha(alpha, n_resamples)
    data, missing = clean(values)
    if len(data) == 0:
        return Interval(math.nan, math.nan, 0, missing)
    rng = np.random.default_rng(seed)
    stats = _resample_stats(data, stat, n_resamples, rng)
    lo, hi = _percentiles(stats, alpha)
    return Interval(lo, hi, len(data), missing)


def bootstrap_corpus(
    predictions: Sequence[str],
    references: Sequence[str],
    fn: Callable[[list[str], list[str]], float],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of a corpus-level metric: resample items with
    replacement and recompute ``fn(predictions, references)`` on each resample.

    Slow for expensive ``fn``; for metrics with additive sufficient statistics (BLEU, chrF)
    ``bootstrap_sufficient`` gives the same resamples (same seed) far faster.
    """
    _check_alpha(alpha, n_resamples)
    if len(predictions) != len(references):
        raise HarnessError(
            f"{len(predictions)} predictions but {len(references)} references",
            fix="Pass one reference per prediction.",
        )
    n = len(predictions)
    if n == 0:
        return Interval(math.nan, math.nan, 0, 0)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=float)
    for r in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        stats[r] = fn([predictions[i] for i in idx], [references[i] for i in idx])
    lo, hi = _percentiles(stats, alpha)
    return Interval(lo, hi, n, 0)


def bootstrap_sufficient(
    item_stats: Sequence[Sequence[float]] | np.ndarray,
    score_fn: Callable[[np.ndarray], float],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of a corpus metric defined by additive per-item
    sufficient statistics: each resample sums the rows of ``item_stats`` (items x stats)
    and calls ``score_fn(summed_row)``. Draws the same indices as ``bootstrap_corpus``."""
    _check_alpha(alpha, n_resamples)
    mat = np.asarray(item_stats, dtype=float)
    if mat.ndim != 2 or mat.shape[0] == 0:
        return Interval(math.nan, math.nan, 0, 0)
    n = mat.shape[0]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=float)
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        sums = mat[idx].sum(axis=1)
        for j, row in enumerate(sums):
            stats[start + j] = score_fn(row)
    lo, hi = _percentiles(stats, alpha)
    return Interval(lo, hi, n, 0)


def paired_bootstrap_sufficient(
    a_stats: Sequence[Sequence[float]] | np.ndarray,
    b_stats: Sequence[Sequence[float]] | np.ndarray,
    score_fn: Callable[[np.ndarray], float],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Paired bootstrap of ``score(a) - score(b)`` for a corpus metric with additive per-item
    sufficient statistics (perplexity, bits per byte, BLEU, chrF): each resample draws the
    same items for both models, sums their rows and recomputes both corpus scores.

    Returns the PairedTest fields ``diff``, ``ci``, ``p_value``, ``test`` and ``n`` (p-value as
    in ``paired_bootstrap``). Rows i of ``a_stats`` and ``b_stats`` must be the same item.
    """
    _check_alpha(alpha, n_resamples)
    a = np.asarray(a_stats, dtype=float)
    b = np.asarray(b_stats, dtype=float)
    if a.shape[0] != b.shape[0]:
        raise HarnessError(f"paired test needs the same items for both models, got {a.shape[0]} and {b.shape[0]}",
                           fix="Score both models on the same task items.")
    n = a.shape[0]
    if n == 0:
        return {"diff": None, "ci": None, "p_value": None, "test": "paired-bootstrap", "n": 0}
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples, dtype=float)
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        sa, sb = a[idx].sum(axis=1), b[idx].sum(axis=1)
        for j in range(stop - start):
            diffs[start + j] = score_fn(sa[j]) - score_fn(sb[j])
    lo, hi = _percentiles(diffs, alpha)
    k_le, k_ge = int((diffs <= 0).sum()), int((diffs >= 0).sum())
    p = 2 * min((k_le + 1) / (n_resamples + 1), (k_ge + 1) / (n_resamples + 1))
    return {"diff": float(score_fn(a.sum(axis=0)) - score_fn(b.sum(axis=0))), "ci": (lo, hi),
            "p_value": float(min(1.0, p)), "test": "paired-bootstrap", "n": n}


def wilson_ci(successes: int, n: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval of a proportion ``successes / n`` (two-sided, level 1 - alpha).

    Unlike the bootstrap percentile interval it does not collapse at 0/n or n/n: 15/15 gives
    [0.796, 1.0], 0/10 gives [0.0, 0.278] (as statsmodels' ``proportion_confint(method="wilson")``).
    """
    if not 0 < alpha < 1:
        raise HarnessError(f"alpha must be in (0, 1), got {alpha}", fix="Use e.g. alpha: 0.05.")
    if n <= 0:
        return Interval(math.nan, math.nan, 0, 0)
    if not 0 <= successes <= n:
        raise HarnessError(f"{successes} successes out of {n}", fix="Pass 0 <= successes <= n.")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    if successes == 0:
        lo = 0.0
    if successes == n:
        hi = 1.0
    return Interval(lo, hi, n, 0)


def is_binary(data: np.ndarray) -> bool:
    """Every value is 0 or 1 (and there is at least one)."""
    return len(data) > 0 and bool(np.isin(data, (0.0, 1.0)).all())


def aggregate(
    values: Sequence[float | None],
    higher_is_better: bool = True,
    seed: int = 0,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    binary: bool = False,
) -> MetricValue:
    """Mean of the present values with its interval, n, missing and standard error (sample sd /
    sqrt(n); None below 2 values). ``value`` is None when nothing is present.

    The interval is the Wilson score interval when ``binary`` (a 0/1 metric: exact match, pass/fail,
    preference accuracy) and every present value is 0 or 1, else the percentile bootstrap of the
    mean; ``ci_method`` says which ("wilson" | "bootstrap")."""
    data, missing = clean(values)
    n = len(data)
    if n == 0:
        return MetricValue(value=None, ci=None, n=0, missing=missing, higher_is_better=higher_is_better)
    if binary and is_binary(data):
        ci, method = wilson_ci(int(data.sum()), n, alpha=alpha), "wilson"
    else:
        ci = bootstrap_ci(data, np.mean, n_resamples=n_resamples, alpha=alpha, seed=seed)
        method = "bootstrap"
    stderr = float(np.std(data, ddof=1) / math.sqrt(n)) if n >= 2 else None
    return MetricValue(
        value=float(np.mean(data)),
        ci=ci.as_ci(),
        n=n,
        missing=missing,
        higher_is_better=higher_is_better,
        stderr=stderr,
        ci_method=method,
    )


def _paired(a_values: Sequence[float | None], b_values: Sequence[float | None]):
    if len(a_values) != len(b_values):
        raise HarnessError(
            f"paired test needs the same samples for both models, got {len(a_values)} and {len(b_values)}",
            fix="Score both models on the same task items (same ids, same order).",
        )
    a = np.array([np.nan if v is None else float(v) for v in a_values], dtype=float)
    b = np.array([np.nan if v is None else float(v) for v in b_values], dtype=float)
    both = ~np.isnan(a) & ~np.isnan(b)
    return a[both], b[both]


def paired_bootstrap(
    a_values: Sequence[float | None],
    b_values: Sequence[float | None],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Paired bootstrap of the difference of means ``a - b`` over the samples both have.

    Returns the PairedTest fields ``diff``, ``ci``, ``p_value``, ``test`` and ``n``. The
    two-sided p-value is twice the smaller share of resampled differences on either side of
    zero, with add-one smoothing ((k + 1) / (R + 1)) so it is never exactly 0, capped at 1.
    With no paired samples ``diff``/``ci``/``p_value`` are None.
    """
    _check_alpha(alpha, n_resamples)
    a, b = _paired(a_values, b_values)
    n = len(a)
    if n == 0:
        return {"diff": None, "ci": None, "p_value": None, "test": "paired-bootstrap", "n": 0}
    d = a - b
    rng = np.random.default_rng(seed)
    stats = _resample_stats(d, np.mean, n_resamples, rng)
    lo, hi = _percentiles(stats, alpha)
    k_le = int((stats <= 0).sum())
    k_ge = int((stats >= 0).sum())
    p = 2 * min((k_le + 1) / (n_resamples + 1), (k_ge + 1) / (n_resamples + 1))
    return {
        "diff": float(d.mean()),
        "ci": (lo, hi),
        "p_value": float(min(1.0, p)),
        "test": "paired-bootstrap",
        "n": n,
    }


def mcnemar(
    a_correct: Sequence[float | bool | None],
    b_correct: Sequence[float | bool | None],
    exact: bool | None = None,
) -> tuple[float, float]:
    """McNemar's test on paired 0/1 outcomes: ``(statistic, p_value)``.

    With ``b`` = items only a got right and ``c`` = items only b got right: the exact version
    (default when b + c < 25) is a two-sided binomial test, statistic ``min(b, c)``; otherwise
    chi-square with continuity correction, statistic ``(|b - c| - 1)^2 / (b + c)``, 1 df.
    No discordant pairs gives ``(0.0, 1.0)``.
    """
    a, b_ = _paired(a_correct, b_correct)
    for arr in (a, b_):
        if not np.isin(arr, (0.0, 1.0)).all():
            raise HarnessError(
                "McNemar's test needs 0/1 outcomes per sample",
                fix="Use it only for binary metrics (exact_match, contains, regex, accuracy).",
            )
    b = int(((a == 1) & (b_ == 0)).sum())
    c = int(((a == 0) & (b_ == 1)).sum())
    if b + c == 0:
        return 0.0, 1.0
    if exact is None:
        exact = b + c < 25
    if exact:
        from scipy.stats import binomtest

        return float(min(b, c)), float(binomtest(min(b, c), b + c, 0.5).pvalue)
    from scipy.stats import chi2

    stat = (abs(b - c) - 1) ** 2 / (b + c)
    return float(stat), float(chi2.sf(stat, 1))


def model_pairs(models: Iterable[str]) -> list[tuple[str, str]]:
    """Every pair of models as (later, earlier) in the given order, the order every paired test
    uses: [base, sft, dpo] -> [(sft, base), (dpo, base), (dpo, sft)]."""
    names = list(models)
    return [(names[j], names[i]) for j in range(len(names)) for i in range(j)]


MIN_PAIRED_N = 5  # below this many shared samples a bootstrap p-value is degenerate: never "significant"


def compare_models(
    per_model: dict[str, Sequence[float | None]],
    metric: str,
    binary: bool = False,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[PairedTest]:
    """Paired tests for every pair of models: each later model ``a`` against each earlier
    model ``b`` in the given order (base, sft, dpo -> sft-base, dpo-base, dpo-sft).

    Every test reports the paired-bootstrap difference and interval; binary metrics take
    their p-value from McNemar's test (``test="mcnemar"``), others from the bootstrap.
    ``significant`` means p < ``alpha`` on at least ``MIN_PAIRED_N`` shared samples. Pairs
    with no sample scored by both are left out.
    """
    tests: list[PairedTest] = []
    for a_name, b_name in model_pairs(per_model):
        a_vals, b_vals = per_model[a_name], per_model[b_name]
        boot = paired_bootstrap(a_vals, b_vals, n_resamples=n_resamples, alpha=alpha, seed=seed)
        if boot["n"] == 0:
            continue
        if binary:
            _, p = mcnemar(a_vals, b_vals)
            test = "mcnemar"
        else:
            p, test = boot["p_value"], "paired-bootstrap"
        tests.append(
            PairedTest(
                metric=metric,
                a=a_name,
                b=b_name,
                diff=boot["diff"],
                ci=boot["ci"],
                p_value=p,
                test=test,
                significant=bool(p < alpha and boot["n"] >= MIN_PAIRED_N),
                n=boot["n"],
            )
        )
    return tests
