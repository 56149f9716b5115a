"""lang_consistency: the answer is in the sample's language (share of letters in its script)."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.metrics import score_per_sample
from harness.metrics.language import language_match, script_share


def test_korean_answers():
    assert language_match("서울입니다.", "ko") == (1.0, 1.0)
    assert language_match("The capital is Seoul.", "ko") == (0.0, 0.0)
    # an English term in a Korean sentence: 6 Hangul of 9 letters
    match, share = language_match("답은 API 키입니다", "ko")
    assert share == pytest.approx(6 / 9) and match == 1.0
    # mostly English with one Korean word: 2 Hangul of 18 letters
    match, share = language_match("The answer is 서울 (Seoul)", "ko")
    assert share == pytest.approx(2 / 18) and match == 0.0


def test_english_answers():
    assert language_match("Paris is the capital.", "en") == (1.0, 1.0)
    assert language_match("파리입니다", "en") == (0.0, 0.0)
    assert language_match("Café au lait, naïve résumé", "en")[1] == 1.0  # Latin letters with accents


def test_threshold_decides_a_mixed_answer():
    text = "서울 is the capital"  # 2 Hangul of 14 letters
    assert script_share(text, "ko") == pytest.approx(2 / 14)
    assert language_match(text, "ko", threshold=0.1)[0] == 1.0
    assert language_match(text, "ko", threshold=0.5)[0] == 0.0


def test_empty_numbers_and_code():
    assert language_match("", "ko") == (None, None)
    assert language_match("   \n", "en") == (None, None)
    assert language_match("86", "ko") == (1.0, None)  # no letters: no language to be wrong in
    assert language_match("3.14 + 2 = 5.14 %", "ko") == (1.0, None)
    assert language_match("```python\nprint('hello')\n```", "ko") == (1.0, None)  # code is left out
    assert language_match("`x = 1` 을 쓰세요", "ko") == (1.0, 1.0)
    assert language_match("print('hello')", "ko") == (0.0, 0.0)  # code outside a fence counts as text


def test_unknown_language_is_not_scored():
    assert language_match("Bonjour", "fr") == (None, None)
    assert language_match("東京です", "ja")[1] == 1.0


def test_through_the_registry_and_options():
    out = score_per_sample(["lang_consistency"], ["서울입니다", "Seoul", None, ""], ["서울", "서울", "서울", "서울"],
                           ["ko", "ko", "ko", "ko"])
    assert out["lang_match"] == [1.0, 0.0, None, None]
    assert out["lang_share"] == [1.0, 0.0, None, None]
    out = score_per_sample(["lang_consistency"], ["서울 is it"], ["서울"], ["ko"],
                           {"lang_consistency": {"threshold": 0.2}})
    assert out["lang_match"] == [1.0]
    with pytest.raises(HarnessError, match="threshold must be a number in"):
        score_per_sample(["lang_consistency"], ["x"], ["x"], ["en"], {"lang_consistency": {"threshold": 2}})
    with pytest.raises(HarnessError, match="unknown option"):
        score_per_sample(["lang_consistency"], ["x"], ["x"], ["en"], {"lang_consistency": {"thresh": 0.2}})


def test_direction_and_paired_test_kind():
    from harness.stages.score import direction

    assert direction("lang_match") == (True, True)  # 0/1: McNemar
    assert direction("lang_share") == (True, False)
    assert direction("pref_acc") == (True, True) and direction("logp_margin") == (True, False)
