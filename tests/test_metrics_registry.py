"""The metric registry: entries built from the @metric functions, and nothing that can drift."""

from __future__ import annotations

import inspect

import pytest

from harness.errors import HarnessError
from harness.metrics import METRICS, Answers, metric_options, metric_spec, output_spec, registry

ANSWERS = Answers(
    predictions=["The answer is Paris.", "자동차가 번개처럼 빠릅니다.", '{"ok": true, "n": 2}', ""],
    references=['"Paris"', '"자동차가 총알처럼 빠릅니다."', '{"ok": true, "n": 3}', '"x"'],  # JSON for json
    langs=["en", "ko", "en", "en"],
    n_tokens=[5, 9, 4, None],
)


def test_registry_entries():
    assert list(METRICS) == [
        "rouge",
        "bleu",
        "chrf",
        "bertscore",
        "exact_match",
        "contains",
        "regex",
        "json",
        "length",
        "perplexity",
        "lang_consistency",
        "preference",
    ]
    assert METRICS["rouge"].outputs == {"rouge1": True, "rouge2": True, "rougeL": True}
    assert METRICS["bleu"].corpus == ("bleu",) and METRICS["bleu"].per_sample
    assert METRICS["rouge"].corpus == () and METRICS["rouge"].kind == "per-sample"
    assert [n for n, s in METRICS.items() if s.kind == "corpus"] == ["bleu", "chrf", "perplexity"]
    assert METRICS["perplexity"].higher_is_better("perplexity") is False
    assert output_spec("json_field:summary")[1:] == (True, True)
    assert output_spec("exact_match")[1:] == (True, True)
    assert output_spec("rougeL")[1:] == (True, False)
    assert output_spec("empty")[1:] == (False, True)
    assert output_spec("length_chars")[1:] == (None, False)
    assert output_spec("bleu")[1:] == (True, False) and output_spec("bits_per_byte")[1:] == (False, False)
    with pytest.raises(HarnessError, match="unknown metric"):
        metric_spec("meteor")
    with pytest.raises(HarnessError, match="unknown metric output"):
        output_spec("meteor")


@pytest.mark.parametrize("name", list(METRICS))
def test_declared_options_are_the_functions_keyword_arguments(name):
    spec = METRICS[name]
    params = inspect.signature(spec.scorer).parameters.values()
    keyword_only = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert list(spec.options) == keyword_only
    # one positional parameter: the Answers; every option has a default (tasks may leave it out)
    assert [p.kind for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert all(p.default is not inspect.Parameter.empty for p in params if p.name in spec.options)
    assert spec.description and set(spec.binary) <= set(spec.outputs)
    assert spec.scorer.__module__ in registry.METRIC_MODULES


@pytest.mark.parametrize("name", [n for n in METRICS if n != "bertscore"])  # bertscore: test_metrics_semantic
def test_functions_write_only_their_declared_outputs(name):
    spec = METRICS[name]
    opts = {"pattern": "{reference}"} if name == "regex" else {}
    out = spec.scorer(ANSWERS, **opts)
    for key, values in out.items():
        assert key in spec.outputs or (spec.dynamic and key.startswith(spec.dynamic)), key
        assert len(values) == len(ANSWERS.predictions)
    assert name in ("perplexity", "preference") or out  # their values come from the Engine


def test_decorator_refuses_options_that_differ_from_the_signature(monkeypatch):
    monkeypatch.setattr(registry, "METRICS", dict(METRICS))
    with pytest.raises(TypeError, match="differ from the keyword-only arguments"):

        @registry.metric("x", description="d", outputs={"x": True}, options={"a": "doc"})
        def x_metric(answers, *, b=1):
            return {}

    with pytest.raises(TypeError, match="binary outputs"):

        @registry.metric("y", description="d", outputs={"y": True}, binary=("z",))
        def y_metric(answers):
            return {}

    with pytest.raises(TypeError, match="registered twice"):

        @registry.metric("rouge", description="d", outputs={"r": True})
        def other_rouge(answers):
            return {}

    @registry.metric("z", description="d", outputs={"z": True}, options={"k": "doc"})
    def z_metric(answers, *, k=0):
        return {"z": [float(k)] * len(answers.predictions)}

    assert list(registry.METRICS)[-1] == "z" and registry.METRICS["z"].options == {"k": "doc"}
    assert "z" not in METRICS


def test_metric_options_checks_names_options_and_shape():
    assert metric_options("rouge", {"rouge": {"tokenizer": "kiwi"}}) == {"tokenizer": "kiwi"}
    assert metric_options("rouge", None) == {} and metric_options("json", {"rouge": {"x": 1}}) == {}
    with pytest.raises(HarnessError, match=r"unknown option\(s\) tokeniser for metric 'rouge'.*Allowed: tokenizer, use_stemmer"):
        metric_options("rouge", {"rouge": {"tokeniser": "kiwi"}})
    with pytest.raises(HarnessError, match="unknown option.*'length'.*Allowed: none"):
        metric_options("length", {"length": {"strict": True}})
    with pytest.raises(HarnessError, match="must be a mapping"):
        metric_options("rouge", {"rouge": ["kiwi"]})
    with pytest.raises(HarnessError, match="^t.yaml: unknown metric 'bleurt'.*Use one of: rouge, bleu"):
        metric_options("bleurt", {}, where="t.yaml")


def test_score_stage_direction_reads_the_registry():
    from harness.stages.score import direction

    for name, spec in METRICS.items():
        for output, hib in spec.outputs.items():
            assert direction(output) == (hib, spec.is_binary(output)), output
    assert direction("json_field:label") == (True, True)
    assert direction("acc") == (True, True)  # lm-eval accuracies
    assert direction("ref_ppl") == (True, False)  # a name no metric writes
