"""harness/report/verdict.py on hand-made scores.json mappings."""

from __future__ import annotations

from harness.report.verdict import compare_pair, metric_family, verdict


def mv(value, n=24, hib=True, missing=0):
    return {"value": value, "ci": [value - 0.05, value + 0.05] if value is not None else None, "n": n,
            "missing": missing, "higher_is_better": hib, "stderr": 0.01}


def ptest(metric, a, b, diff, significant):
    return {"metric": metric, "a": a, "b": b, "diff": diff, "ci": [diff - 0.1, diff + 0.1],
            "p_value": 0.001 if significant else 0.4, "test": "paired-bootstrap", "significant": significant, "n": 24}


def scores(models, metrics, paired, *, neutral=(), extra_groups=None, coverage=None):
    """``metrics``: {metric: {model: MetricValue dict}}, all in the pooled "all" group."""
    per_model = {m: {k: v[m] for k, v in metrics.items() if m in v} for m in models}
    groups = {"all": {"kind": "task", "models": per_model, "paired": paired, "info": {"neutral": list(neutral)}}}
    groups.update(extra_groups or {})
    out = {"schema": 1, "models": models, "groups": groups}
    if coverage:
        out["coverage"] = coverage
    return out


QUALITY = ["rougeL", "rouge1", "chrf", "bleu", "bertscore_f1"]


def three_models():
    """sft beats base on every quality metric and perplexity; dpo = sft except perplexity (worse)."""
    metrics = {k: {"base": mv(0.2), "sft": mv(0.4), "dpo": mv(0.41)} for k in QUALITY}
    metrics["perplexity"] = {"base": mv(30.0, hib=False), "sft": mv(12.0, hib=False), "dpo": mv(15.0, hib=False)}
    metrics["length_words"] = {"base": mv(40.0), "sft": mv(20.0), "dpo": mv(22.0)}
    metrics["empty"] = {"base": mv(0.2, hib=False), "sft": mv(0.0, hib=False), "dpo": mv(0.0, hib=False)}
    paired = []
    for k in QUALITY:
        paired += [ptest(k, "sft", "base", 0.2, True), ptest(k, "dpo", "base", 0.21, True),
                   ptest(k, "dpo", "sft", 0.01, False)]
    paired += [ptest("perplexity", "sft", "base", -18.0, True), ptest("perplexity", "dpo", "base", -15.0, True),
               ptest("perplexity", "dpo", "sft", 3.0, True)]
    paired += [ptest("length_words", "sft", "base", -20.0, True), ptest("length_words", "dpo", "sft", 2.0, True),
               ptest("empty", "sft", "base", -0.2, True)]
    return scores(["base", "sft", "dpo"], metrics, paired, neutral=["length_words"])


def test_wins_and_a_single_loss_give_best_and_pair_sentences():
    v = verdict(three_models())
    assert v.best == ["sft"]
    lines = v.lines()
    assert lines[0] == "Best: sft."
    # lengths have no better direction, `empty` is a sanity check: never counted, even when significant
    assert lines[1] == "sft beats base on 6 of 6 metrics (significant)."
    assert lines[2] == "dpo vs sft: no significant difference except perplexity (worse)."
    assert v.pairs[1].worse == ["perplexity"] and "length_words" not in v.pairs[1].same
    assert v.notes == [] and v.extra == []


def test_losses_are_direction_aware():
    s = three_models()
    # a perplexity rise (diff > 0) is worse; the same test read from the other side (b vs a) too
    for p in s["groups"]["all"]["paired"]:
        if p["metric"] == "perplexity" and p["a"] == "dpo" and p["b"] == "sft":
            p["a"], p["b"], p["diff"] = "sft", "dpo", -3.0
    assert compare_pair(s, "dpo", "sft").worse == ["perplexity"]
    assert compare_pair(s, "sft", "dpo").better == ["perplexity"]


def test_no_difference_anywhere():
    metrics = {k: {"a": mv(0.3), "b": mv(0.31)} for k in QUALITY}
    paired = [ptest(k, "b", "a", 0.01, False) for k in QUALITY]
    v = verdict(scores(["a", "b"], metrics, paired))
    assert v.best == []
    assert v.lines()[:2] == ["No model is significantly better than another.",
                             "b vs a: no significant difference on any of 5 metrics."]


def test_regression_and_mixed_results():
    metrics = {k: {"a": mv(0.5), "b": mv(0.3)} for k in QUALITY}
    paired = [ptest(k, "b", "a", -0.2, True) for k in QUALITY]
    v = verdict(scores(["a", "b"], metrics, paired))
    assert v.best == ["a"] and v.lines()[1] == "b is worse than a on 5 of 5 metrics (significant)."
    paired = [ptest(k, "b", "a", 0.2 if i < 3 else -0.2, True) for i, k in enumerate(QUALITY)]
    v = verdict(scores(["a", "b"], metrics, paired))
    assert v.best == ["b"]
    assert v.lines()[1] == "b vs a: better on rougeL, rouge1, chrf, worse on bleu, bertscore_f1 of 5 metrics (significant)."


def test_single_model():
    v = verdict(scores(["only"], {"rougeL": {"only": mv(0.3)}}, []))
    assert v.best == [] and v.pairs == []
    assert v.lines() == ["One model (only): nothing to compare."]


def test_missing_metrics_tests_and_thin_values_are_not_evidence():
    metrics = {"rougeL": {"a": mv(0.2), "b": mv(0.4)},
               "chrf": {"a": mv(20.0), "b": mv(40.0)},  # no paired test stored
               "valid_json": {"a": mv(0.1, n=4), "b": mv(0.9, n=4)},  # below the coverage rule
               "bleu": {"a": mv(5.0)}}  # b has no value at all
    paired = [ptest("rougeL", "b", "a", 0.2, True), ptest("valid_json", "b", "a", 0.8, True)]
    v = verdict(scores(["a", "b"], metrics, paired))
    p = v.pairs[0]
    assert (p.better, p.worse, p.same, p.thin, p.untested) == (["rougeL"], [], [], ["valid_json"], ["chrf"])
    assert v.lines()[1] == "b beats a on 1 of 1 metric (significant)."
    assert "Not counted (too few items to read): valid_json." in v.notes
    assert "Not counted (no paired test stored): chrf." in v.notes
    # a stricter or looser coverage rule changes what counts
    loose = verdict(scores(["a", "b"], metrics, paired, coverage={"min_n": 2, "max_missing_share": 0.5}))
    assert loose.pairs[0].better == ["rougeL", "valid_json"]


def test_no_scores_at_all():
    v = verdict({"models": ["a", "b"], "groups": {}})
    assert v.lines() == ["No paired tests: the models cannot be compared on these scores.",
                         "b vs a: no metric with a paired test to compare."]


def test_tie_for_best():
    metrics = {k: {"base": mv(0.2), "sft": mv(0.4), "dpo": mv(0.4)} for k in QUALITY[:2]}
    paired = []
    for k in QUALITY[:2]:
        paired += [ptest(k, "sft", "base", 0.2, True), ptest(k, "dpo", "base", 0.2, True),
                   ptest(k, "dpo", "sft", 0.0, False)]
    v = verdict(scores(["base", "sft", "dpo"], metrics, paired))
    assert v.best == ["sft", "dpo"]
    assert v.lines()[0].startswith("Best: sft and dpo (tied")


def test_preference_benchmark_and_judge_lines():
    metrics = {"rougeL": {"base": mv(0.2), "dpo": mv(0.4)}}
    extra = {
        "demo-pref": {"kind": "task", "info": {"type": "preference"}, "models": {
            "base": {"pref_acc": mv(0.5, n=20)}, "dpo": {"pref_acc": mv(0.85, n=20)}},
            "paired": [ptest("pref_acc", "dpo", "base", 0.35, True)]},
        "mmlu-mini": {"kind": "benchmark", "models": {"base": {"acc": mv(0.3, n=30)}, "dpo": {"acc": mv(0.33, n=30)}},
                      "paired": [{**ptest("acc", "dpo", "base", 0.03, False), "test": "mcnemar"}]},
        "judge": {"kind": "judge", "info": {"small_local": True}, "models": {
            "base": {"reference-0-100": mv(25.0, n=12)}, "dpo": {"reference-0-100": mv(60.0, n=12)}},
            "paired": [ptest("reference-0-100", "dpo", "base", 35.0, True)]},
        "judge-pairwise": {"kind": "judge", "info": {"judge": "pairwise-helpful", "matrix": {
            "dpo": {"base": {"win": 8, "tie": 2, "loss": 1, "missing": 0}}}}, "models": {}, "paired": []},
    }
    v = verdict(scores(["base", "dpo"], metrics, [ptest("rougeL", "dpo", "base", 0.2, True)], extra_groups=extra))
    # the preference task is not in the tally; the benchmark's acc is
    assert v.lines()[1] == "dpo beats base on 1 of 2 metrics (significant); no significant difference on mmlu-mini acc."
    assert v.extra == [
        "preference accuracy (demo-pref): base 0.500 · dpo 0.850; dpo − base +0.350 (significant)",
        "judge reference-0-100: base 25.00 · dpo 60.00; dpo − base +35.00 (significant) "
        "(small local judge: indicative only)",
        "pairwise judge pairwise-helpful: dpo vs base won 8, lost 1, 2 ties",
    ]
    for m in ("base", "dpo"):  # too few pairs for every model: one short line, no numbers
        extra["demo-pref"]["models"][m]["pref_acc"]["n"] = 6
    v = verdict(scores(["base", "dpo"], metrics, [ptest("rougeL", "dpo", "base", 0.2, True)], extra_groups=extra))
    assert v.extra[0] == "preference accuracy (demo-pref): insufficient for every model (n=6 < 10)"


def test_without_a_pooled_group_every_task_counts():
    s = {"models": ["a", "b"], "groups": {
        "t1": {"kind": "task", "models": {"a": {"em": mv(0.1)}, "b": {"em": mv(0.5)}},
               "paired": [ptest("em", "b", "a", 0.4, True)]},
        "t2": {"kind": "task", "models": {"a": {"em": mv(0.1)}, "b": {"em": mv(0.1)}},
               "paired": [ptest("em", "b", "a", 0.0, False)]}}}
    p = verdict(s).pairs[0]
    assert p.better == ["t1 em"] and p.same == ["t2 em"]


def test_metric_family():
    assert [metric_family(m) for m in ("rougeL", "bertscore_f1", "reference-0-100", "exact_match")] == ["quality"] * 4
    assert [metric_family(m) for m in ("valid_json", "json_field_acc", "field_f1", "regex")] == ["structure"] * 4
    assert [metric_family(m) for m in ("perplexity", "bits_per_byte", "ref_ppl")] == ["perplexity"] * 3
    assert [metric_family(m) for m in ("length_words", "empty")] == ["other"] * 2
    assert metric_family("rougeL", neutral=True) == "other"
