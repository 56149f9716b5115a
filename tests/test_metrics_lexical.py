"""ROUGE / BLEU / chrF against rouge-score and sacrebleu called directly, English and Korean."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.metrics import lexical

KO_PRED = "자동차가 번개처럼 빠릅니다."
KO_REF = "자동차가 총알처럼 빠릅니다."
EN_PREDS = ["The cats are running in the park.", "He reads books every evening", ""]
EN_REFS = ["A cat runs in the park.", "Every evening he is reading a book.", "Nothing here."]


def _direct_rouge(pred, ref, tokenizer=None, use_stemmer=True):
    from rouge_score import rouge_scorer

    s = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=use_stemmer, tokenizer=tokenizer)
    return s.score(ref, pred)


def test_detect_lang():
    assert lexical.detect_lang(KO_PRED) == "ko"
    assert lexical.detect_lang("The capital is Seoul.") == "en"
    assert lexical.detect_lang("삼성전자 주가 stock") == "ko"  # 6 of 11 letters
    assert lexical.detect_lang("Samsung Electronics stock price rose today 삼") == "en"
    assert lexical.detect_lang("12345 !!") == "en"


def test_rouge_english_matches_rouge_score_with_stemmer():
    out = lexical.rouge(EN_PREDS, EN_REFS, ["en"] * 3)
    for i, (p, r) in enumerate(zip(EN_PREDS, EN_REFS)):
        ref = _direct_rouge(p, r)
        for k in ("rouge1", "rouge2", "rougeL"):
            assert out[k][i] == pytest.approx(ref[k].fmeasure, abs=1e-6)
    assert out["rouge1"][0] > 0.5  # stemming: cats/cat, running/runs
    assert out["rouge1"][2] == 0.0


def test_rouge_korean_notes_numbers():
    # rouge-score's default tokenizer drops Hangul: even identical Korean strings score 0
    assert _direct_rouge(KO_REF, KO_REF)["rouge1"].fmeasure == 0.0
    got = {
        name: lexical.rouge([KO_PRED], [KO_REF], "ko", tokenizer=name)["rouge1"][0]
        for name in ("default", "whitespace", "char", "kiwi", "auto")
    }
    assert got["default"] == 0.0
    assert got["whitespace"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["char"] == pytest.approx(11 / 13, abs=1e-6)  # 0.846
    assert got["kiwi"] == pytest.approx(6 / 7, abs=1e-6)  # 0.857
    assert got["auto"] == got["kiwi"]
    assert lexical.rouge([KO_REF], [KO_REF], "ko")["rougeL"][0] == pytest.approx(1.0)


def test_custom_tokenizers_plug_into_rouge_score():
    class Ws:
        def tokenize(self, text):
            return text.lower().split()

    class Ch:
        def tokenize(self, text):
            return [c for c in text.lower() if not c.isspace()]

    for name, ref_tok in (("whitespace", Ws()), ("char", Ch())):
        for p, r in [(KO_PRED, KO_REF)] + list(zip(EN_PREDS, EN_REFS)):
            ours = lexical.rouge([p], [r], None, tokenizer=name)
            direct = _direct_rouge(p, r, tokenizer=ref_tok)
            for k in ("rouge1", "rouge2", "rougeL"):
                assert ours[k][0] == pytest.approx(direct[k].fmeasure, abs=1e-6)
    # the object returned by rouge_tokenizer is what RougeScorer accepts
    kiwi = lexical.rouge_tokenizer("kiwi")
    assert kiwi.tokenize(KO_PRED)[:2] == ["자동차", "가"]
    direct = _direct_rouge(KO_PRED, KO_REF, tokenizer=kiwi)
    assert direct["rouge1"].fmeasure == pytest.approx(6 / 7, abs=1e-6)


def test_rouge_auto_mixes_languages_per_sample():
    preds = [KO_PRED, EN_PREDS[0]]
    refs = [KO_REF, EN_REFS[0]]
    out = lexical.rouge(preds, refs, [None, None])  # detected from the reference
    assert out["rouge1"][0] == pytest.approx(6 / 7, abs=1e-6)
    assert out["rouge1"][1] == pytest.approx(_direct_rouge(preds[1], refs[1])["rouge1"].fmeasure, abs=1e-6)


def test_rouge_errors():
    with pytest.raises(HarnessError, match="unknown ROUGE tokenizer"):
        lexical.rouge(["a"], ["a"], "en", tokenizer="nltk")
    with pytest.raises(HarnessError, match="1 predictions but 2 references"):
        lexical.rouge(["a"], ["a", "b"], "en")


def test_bleu_korean_notes_numbers_and_signature():
    for tok, expected in (("13a", 35.36), ("char", 67.03), ("ko-mecab", 37.99)):
        r = lexical.bleu([KO_PRED], [KO_REF], lang="ko", tokenize=tok, n_resamples=0)
        assert r["score"] == pytest.approx(expected, abs=0.005)
        assert r["tokenize"] == tok
        assert f"tok:{tok}" in r["signature"]
    assert lexical.bleu([KO_PRED], [KO_REF], lang="ko", n_resamples=0)["tokenize"] == "ko-mecab"
    assert lexical.bleu([KO_PRED], [KO_REF], lang="en", n_resamples=0)["tokenize"] == "13a"


@pytest.mark.parametrize(
    "lang,preds,refs",
    [
        ("en", EN_PREDS, EN_REFS),
        ("ko", [KO_PRED, "오늘 날씨가 좋습니다."], [KO_REF, "오늘은 날씨가 좋네요."]),
    ],
)
def test_bleu_matches_sacrebleu(lang, preds, refs):
    from sacrebleu.metrics import BLEU

    tok = "ko-mecab" if lang == "ko" else "13a"
    r = lexical.bleu(preds, refs, lang=lang, n_resamples=200)
    direct = BLEU(tokenize=tok).corpus_score(preds, [refs])
    assert r["score"] == pytest.approx(direct.score, abs=1e-6)
    sent = BLEU(tokenize=tok, effective_order=True)
    for i, (p, ref) in enumerate(zip(preds, refs)):
        assert r["sentence"][i] == pytest.approx(sent.sentence_score(p, [ref]).score, abs=1e-6)
    lo, hi = r["ci"]
    assert lo <= r["score"] <= hi


def test_bleu_ci_same_as_generic_corpus_bootstrap():
    from sacrebleu.metrics import BLEU

    from harness.metrics.stats import bootstrap_corpus

    preds = EN_PREDS[:2] + ["the park is green", "she sings a song"]
    refs = EN_REFS[:2] + ["the park is very green", "he sings songs"]
    fast = lexical.bleu(preds, refs, "en", n_resamples=100, seed=3)["ci"]
    slow = bootstrap_corpus(
        preds, refs, lambda p, r: BLEU(tokenize="13a").corpus_score(p, [r]).score, n_resamples=100, seed=3
    )
    assert fast == pytest.approx(list(slow), abs=1e-9)


def test_chrf_matches_sacrebleu():
    from sacrebleu.metrics import CHRF

    for preds, refs in ((EN_PREDS, EN_REFS), ([KO_PRED], [KO_REF])):
        for wo in (0, 2):
            r = lexical.chrf(preds, refs, word_order=wo, n_resamples=50)
            m = CHRF(word_order=wo)
            assert r["score"] == pytest.approx(m.corpus_score(preds, [refs]).score, abs=1e-6)
            for i, (p, ref) in enumerate(zip(preds, refs)):
                assert r["sentence"][i] == pytest.approx(m.sentence_score(p, [ref]).score, abs=1e-6)
    assert lexical.chrf([KO_PRED], [KO_REF], n_resamples=0)["score"] == pytest.approx(55.264, abs=1e-3)


def test_bleu_unknown_tokenizer_is_user_error():
    with pytest.raises(HarnessError, match="unknown sacrebleu tokenizer"):
        lexical.bleu(["a"], ["a"], tokenize="nope")


def test_empty_inputs():
    assert lexical.bleu([], [], "en")["score"] is None
    assert lexical.rouge([], [], "en") == {"rouge1": [], "rouge2": [], "rougeL": []}


def test_corpus_score_is_the_corpus_part_of_bleu_and_chrf():
    preds = EN_PREDS[:2] + ["the park is green", "she sings a song"]
    refs = EN_REFS[:2] + ["the park is very green", "he sings songs"]
    keys = ("score", "ci", "n", "signature")
    b = lexical.bleu(preds, refs, "en", n_resamples=100, seed=3)
    cs = lexical.corpus_score("bleu", preds, refs, lang="en", n_resamples=100, seed=3)
    assert {k: cs[k] for k in keys} == {k: b[k] for k in keys} and cs["tokenize"] == b["tokenize"] == "13a"
    assert len(cs["stats"]) == len(preds)
    assert cs["score_fn"]([sum(col) for col in zip(*cs["stats"])]) == pytest.approx(cs["score"], abs=1e-9)
    c = lexical.chrf(preds, refs, n_resamples=100, seed=3)
    cc = lexical.corpus_score("chrf", preds, refs, n_resamples=100, seed=3)
    assert {k: cc[k] for k in keys} == {k: c[k] for k in keys} and "tokenize" not in cc
    assert lexical.corpus_score("bleu", [KO_PRED], [KO_REF], lang="ko", n_resamples=0)["tokenize"] == "ko-mecab"
    empty = lexical.corpus_score("chrf", [], [])
    assert (empty["score"], empty["ci"], empty["n"], empty["stats"]) == (None, None, 0, [])
    with pytest.raises(HarnessError, match="no corpus score for metric 'rouge'"):
        lexical.corpus_score("rouge", ["a"], ["a"])
    with pytest.raises(HarnessError, match="1 predictions but 2 references"):
        lexical.corpus_score("bleu", ["a"], ["a", "b"])
