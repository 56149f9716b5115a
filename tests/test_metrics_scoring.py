"""Per-sample values in the generate stage, corpus scores only in the score stage."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.metrics import score_per_sample
from harness.records import Sample


def test_score_per_sample_dispatch_and_missing_predictions():
    from harness.metrics.lexical import bleu, chrf, rouge

    preds = ["The answer is Paris.", None, "자동차가 번개처럼 빠릅니다.", '{"ok": true}']
    refs = ["Paris", "Berlin", "자동차가 총알처럼 빠릅니다.", '{"ok": true}']
    langs = ["en", "en", "ko", "en"]
    per = score_per_sample(
        ["rouge", "bleu", "chrf", "contains", "exact_match", "regex", "length", "perplexity"],
        preds,
        refs,
        langs,
        options={"regex": {"pattern": r"{reference}"}, "chrf": {"word_order": 2}},
        n_tokens=[5, None, 9, 4],
    )
    assert per["contains"] == [1.0, None, 0.0, 1.0]
    assert per["exact_match"] == [0.0, None, 0.0, 1.0]
    assert per["regex"] == [1.0, None, 0.0, 1.0]  # {reference} is escaped: the JSON braces match literally
    assert per["rouge1"][2] == pytest.approx(6 / 7) and per["rouge1"][1] is None
    kept = [0, 2, 3]
    direct = rouge([preds[i] for i in kept], [refs[i] for i in kept], [langs[i] for i in kept])
    assert [per["rougeL"][i] for i in kept] == pytest.approx(direct["rougeL"])
    # sentence scores equal those of the corpus functions (majority language: en -> 13a)
    b = bleu([preds[i] for i in kept], [refs[i] for i in kept], "en", n_resamples=0)
    assert [per["bleu_sent"][i] for i in kept] == b["sentence"] and b["tokenize"] == "13a"
    c = chrf([preds[i] for i in kept], [refs[i] for i in kept], word_order=2, n_resamples=0)
    assert [per["chrf_sent"][i] for i in kept] == c["sentence"]
    assert per["bleu_sent"][1] is None and len(per["bleu_sent"]) == 4
    assert per["length_tokens"] == [5.0, None, 9.0, 4.0] and per["empty"][1] is None
    assert "perplexity" not in per and "bleu" not in per and "chrf" not in per  # no corpus scores here


def test_score_per_sample_json_and_option_errors():
    per = score_per_sample(["json"], ['{"a": 1, "b": "x"}', "nope"], [{"a": 1, "b": "y"}, {"a": 2}])
    assert per["valid_json"] == [1.0, 0.0]
    assert per["json_field_acc"] == [0.5, 0.0]
    assert per["json_field:a"] == [1.0, 0.0] and per["json_field:b"] == [0.0, None]
    with pytest.raises(HarnessError, match="unknown option"):
        score_per_sample(["rouge"], ["a"], ["a"], options={"rouge": {"tokeniser": "kiwi"}})
    with pytest.raises(HarnessError, match="unknown option.*n_resamples"):  # intervals are the score stage's
        score_per_sample(["bleu"], ["a"], ["a"], options={"bleu": {"n_resamples": 100}})
    with pytest.raises(HarnessError, match="needs a pattern"):
        score_per_sample(["regex"], ["a"], ["a"])
    with pytest.raises(HarnessError, match="unknown metric"):
        score_per_sample(["bleurt"], ["a"], ["a"])
    with pytest.raises(HarnessError, match="2 predictions but 1 references"):
        score_per_sample(["rouge"], ["a", "b"], ["a"])
    with pytest.raises(HarnessError, match="must be a mapping"):
        score_per_sample(["rouge"], ["a"], ["a"], options={"rouge": "kiwi"})


def test_options_are_checked_before_any_metric_runs(monkeypatch):
    from harness.metrics import lexical

    monkeypatch.setattr(lexical, "rouge", lambda *a, **k: pytest.fail("rouge ran before the options were checked"))
    with pytest.raises(HarnessError, match="unknown option"):
        score_per_sample(["rouge", "chrf"], ["a"], ["a"], options={"chrf": {"order": 3}})


def _samples(model: str, responses: list[str], refs: list[str], lang: str = "en") -> list[Sample]:
    return [Sample(id=f"s{i}", task="t", model=model, lang=lang, instruction="q", reference=r, response=p,
                   prompt="p", n_tokens=3) for i, (p, r) in enumerate(zip(responses, refs))]


REFS = ["The cat sat on the mat.", "Paris is the capital of France.", "Water boils at 100 degrees.",
        "He goes to school.", "Red is a primary color.", "Mars and Venus are planets."]
ANSWERS = {
    "base": ["A cat is on a mat.", "Paris.", "Water boils.", "He go to school.", "Red.", "Mars."],
    "sft": ["The cat sat on a mat.", "Paris is France's capital.", "Water boils at 100 degrees.",
            "He goes to school.", "Red is a color.", "Mars and Venus."],
}


def test_metrics_stage_stores_per_sample_values_without_resampling(monkeypatch):
    from harness.metrics import stats
    from harness.stages.metrics import score as _score_per_sample
    from harness.tasks import TaskSpec

    def no_bootstrap(*a, **k):
        raise AssertionError("the metrics stage resampled a corpus score")

    monkeypatch.setattr(stats, "bootstrap_sufficient", no_bootstrap)
    task = TaskSpec(name="t", data="d.jsonl", metrics=["bleu", "chrf", "length", "perplexity"])
    ss = _samples("base", ANSWERS["base"], REFS)
    _score_per_sample(ss, task)
    assert set(ss[0].metrics) == {"bleu_sent", "chrf_sent", "length_chars", "length_words", "length_tokens",
                                  "empty"}
    assert ss[0].metrics["length_tokens"] == 3.0


def test_score_stage_computes_corpus_bleu_and_chrf_from_stored_samples():
    from harness.metrics.lexical import bleu, chrf, corpus_statistics
    from harness.metrics.stats import paired_bootstrap_sufficient
    from harness.records import MetricValue
    from harness.stages.metrics import score as _score_per_sample
    from harness.stages.score import task_group
    from harness.tasks import TaskSpec

    task = TaskSpec(name="t", data="d.jsonl", metrics=["bleu", "chrf", "rouge"])
    per_model = {m: _samples(m, answers, REFS) for m, answers in ANSWERS.items()}
    for ss in per_model.values():
        _score_per_sample(ss, task)
    group = task_group(per_model, seed=3, n_resamples=200)
    for m, answers in ANSWERS.items():
        b = bleu(answers, REFS, "en", seed=3, n_resamples=200)
        c = chrf(answers, REFS, seed=3, n_resamples=200)
        got = MetricValue.from_dict(group["models"][m]["bleu"])
        assert got.value == b["score"] and list(got.ci) == b["ci"] and got.n == len(REFS)
        assert group["models"][m]["chrf"]["value"] == c["score"] and group["models"][m]["chrf"]["ci"] == c["ci"]
        assert "bleu_sent" not in group["models"][m] and "chrf_sent" not in group["models"][m]  # replaced
        assert "rougeL" in group["models"][m]
    assert group["info"]["bleu_tokenize"] == "13a" and group["info"]["bleu_signature"] == b["signature"]
    assert group["info"]["chrf_signature"] == c["signature"]
    paired = {t["metric"]: t for t in group["paired"]}
    a_rows, fn = corpus_statistics("bleu", ANSWERS["sft"], REFS)
    b_rows, _ = corpus_statistics("bleu", ANSWERS["base"], REFS)
    expect = paired_bootstrap_sufficient(a_rows, b_rows, fn, seed=3, n_resamples=200)
    assert paired["bleu"]["test"] == "paired-bootstrap (corpus)" and paired["bleu"]["a"] == "sft"
    assert paired["bleu"]["diff"] == expect["diff"] and paired["bleu"]["ci"] == list(expect["ci"])
    # pooled groups ('all') keep the sentence-level means instead
    pooled = task_group(per_model, seed=3, n_resamples=200, corpus=False)
    assert "bleu" not in pooled["models"]["base"] and "bleu_sent" in pooled["models"]["base"]
