"""Exact match, containment, regex, JSON answers and lengths."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.metrics import structured as st


def test_exact_match_normalisation_is_configurable():
    preds = ["  Paris ", "paris.", "Seoul", "서울  특별시"]
    refs = ["paris", "Paris", "Busan", "서울 특별시"]
    assert st.exact_match(preds, refs) == [1.0, 0.0, 0.0, 1.0]
    assert st.exact_match(preds, refs, strip_punctuation=True) == [1.0, 1.0, 0.0, 1.0]
    assert st.exact_match(preds, refs, ignore_case=False) == [0.0, 0.0, 0.0, 1.0]
    assert st.exact_match(preds, refs, normalize_whitespace=False) == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(HarnessError):
        st.exact_match(["a"], [])


def test_contains():
    preds = ["The capital of France is Paris.", "I think it's Lyon", "", "대한민국의 수도는 서울입니다."]
    refs = ["paris", "Paris", "", "서울"]
    assert st.contains(preds, refs) == [1.0, 0.0, 1.0, 1.0]
    assert st.contains(["x"], [""]) == [0.0]


def test_regex_match():
    preds = ["Answer: B", "the answer is (C)", "I don't know", "ANSWER: b"]
    assert st.regex_match(preds, r"answer:\s*[A-D]") == [1.0, 0.0, 0.0, 1.0]
    assert st.regex_match(preds, r"answer:\s*[A-D]", ignore_case=False) == [0.0, 0.0, 0.0, 0.0]
    refs = ["B", "C", "A", "C"]
    assert st.regex_match(preds, r"answer\W*(is\W*)?\(?{reference}\)?\b", references=refs) == [
        1.0,
        1.0,
        0.0,
        0.0,
    ]
    # {reference} is escaped; other braces keep their regex meaning
    assert st.regex_match(["cost 1.5 and 123"], r"{reference} and \d{3}", references=["1.5"]) == [1.0]
    assert st.regex_match(["cost 105 and 123"], r"{reference} and \d{3}", references=["1.5"]) == [0.0]
    with pytest.raises(HarnessError, match="invalid regex"):
        st.regex_match(["x"], r"([a-")
    with pytest.raises(HarnessError, match="no references"):
        st.regex_match(["x"], r"{reference}")


def test_extract_json_variants():
    assert st.extract_json('{"a": 1}') == {"a": 1}
    assert st.extract_json('Sure! Here it is:\n```json\n{"a": 1, "b": [1, 2]}\n```\nHope it helps') == {
        "a": 1,
        "b": [1, 2],
    }
    assert st.extract_json('The result is {"ok": true} and {"ok": false}.') == {"ok": True}
    assert st.extract_json('Braces {not json} then {"x": "y"}') == {"x": "y"}
    assert st.extract_json('```\n{"a": 2}\n```') == {"a": 2}
    assert st.extract_json("no json here") is None
    assert st.extract_json('{"a": 1,') is None
    assert st.extract_json("") is None


def test_values_equal_normalises():
    assert st.values_equal(True, True) and not st.values_equal(False, True)
    assert st.values_equal("true", True) and st.values_equal("예", True) and st.values_equal("No", False)
    assert not st.values_equal("maybe", True)
    assert st.values_equal(3, 3.0) and st.values_equal("3.0", 3) and st.values_equal("1,000", 1000)
    assert not st.values_equal(True, 1) and not st.values_equal(3.1, 3)
    assert st.values_equal("  Samsung   Electronics ", "samsung electronics")
    assert st.values_equal(5, "5") and st.values_equal(True, "true")
    assert st.values_equal(["A", 1], ["a", 1.0]) and not st.values_equal(["a"], ["a", "b"])
    assert st.values_equal({"X": 1, "y": 2}, {"x": 1}) and not st.values_equal({"x": 2}, {"x": 1})
    assert st.values_equal(None, None) and not st.values_equal("", None)


def test_json_answer_fields():
    refs = [
        {"is_stock_related": True, "summary": "삼성전자 주가 상승", "count": 3},
        '{"is_stock_related": false, "summary": "날씨 맑음", "count": 0}',
        {"is_stock_related": True, "summary": "x"},
    ]
    preds = [
        '```json\n{"is_stock_related": "true", "summary": "삼성전자  주가 상승", "count": "3"}\n```',
        "I cannot answer that.",
        'Result: {"IS_STOCK_RELATED": true, "summary": "y"}',
    ]
    r = st.json_answer(preds, refs)
    assert r["valid_json"] == [1.0, 0.0, 1.0]
    assert r["field_acc"] == pytest.approx([1.0, 0.0, 0.5])
    assert r["fields"]["is_stock_related"] == [1.0, 0.0, 1.0]
    assert r["fields"]["count"] == [1.0, 0.0, None]  # third reference has no count
    assert r["field_summary"]["summary"] == pytest.approx(1 / 3)
    assert r["field_summary"]["count"] == pytest.approx(0.5)
    with pytest.raises(HarnessError, match="reference 0 is not JSON"):
        st.json_answer(["{}"], ["not json"])


def test_json_answer_non_object_reference():
    r = st.json_answer(["[1, 2]", "[1, 3]"], ["[1, 2]", [1, 2]])
    assert r["valid_json"] == [1.0, 1.0] and r["field_acc"] == [1.0, 0.0]


def test_length_stats():
    r = st.length_stats(["  hello world ", "", "안녕하세요 세계", "   "], n_tokens=[3, 0, 5, None])
    assert r["length_chars"] == [11.0, 0.0, 8.0, 0.0]
    assert r["length_words"] == [2.0, 0.0, 2.0, 0.0]
    assert r["empty"] == [0.0, 1.0, 0.0, 1.0]
    assert r["length_tokens"] == [3.0, 0.0, 5.0, None]
    assert "length_tokens" not in st.length_stats(["a"])


def test_json_lenient_reads_python_literals_beside_strict_valid_json():
    from harness.metrics.structured import json_answer, read_lenient_json

    preds = ['{"ok": true, "n": 3}', "{'ok': True, 'n': 3}", "Answer: {'ok': False, 'n': 3} done", "no json"]
    refs = ['{"ok": true, "n": 3}'] * 4
    strict = json_answer(preds, refs)
    assert strict["valid_json"] == [1.0, 0.0, 0.0, 0.0]
    assert strict["json_lenient"] == [1.0, 1.0, 1.0, 0.0]
    assert strict["field_acc"] == [1.0, 0.0, 0.0, 0.0]  # strict: a Python dict answers no field
    loose = json_answer(preds, refs, lenient=True)
    assert loose["valid_json"] == strict["valid_json"]  # valid_json stays strict
    assert loose["field_acc"] == [1.0, 1.0, 0.5, 0.0]
    assert read_lenient_json("{'a': None}") == {"a": None} and read_lenient_json("{'a': os.system}") is None


def test_json_metric_option_lenient_json():
    from harness.metrics import score_per_sample

    per = score_per_sample(["json"], ["{'ok': True}"], ['{"ok": true}'], ["en"], {"json": {"lenient_json": True}})
    assert per["valid_json"] == [0.0] and per["json_lenient"] == [1.0] and per["json_field_acc"] == [1.0]
