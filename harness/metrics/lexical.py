"""Lexical overlap metrics: ROUGE (per sample), BLEU and chrF (corpus + per sentence).

ROUGE comes from ``rouge-score``; its default tokenizer keeps only ``[a-z0-9]``, so every
Korean pair would score 0. ``rouge_tokenizer`` supplies tokenizers that work for Korean
(kiwipiepy morphemes, characters, whitespace); ``"auto"`` picks kiwi for Korean and the
default (Porter-stemmed) tokenizer for English. BLEU/chrF come from ``sacrebleu``; Korean
BLEU uses its ``ko-mecab`` tokenizer (``sacrebleu[ko]``).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence

from harness.errors import HarnessError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ROUGE_TOKENIZERS = ("auto", "kiwi", "default", "char", "whitespace")
BLEU_TOKENIZE = {"ko": "ko-mecab", "en": "13a"}

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\ud7b0-\ud7ff]")


def detect_lang(text: str) -> str:
    """``"ko"`` when Hangul makes up at least 30% of the letters in ``text``, else ``"en"``."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "en"
    hangul = sum(1 for ch in letters if _HANGUL.match(ch))
    return "ko" if hangul / len(letters) >= 0.3 else "en"


_KIWI_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _kiwi():
    """The one shared ``kiwipiepy.Kiwi`` instance (starting one takes about 1.5 s)."""
    try:
        from kiwipiepy import Kiwi
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise HarnessError(
            f"the kiwi ROUGE tokenizer needs kiwipiepy ({e})", fix="pip install kiwipiepy"
        ) from e
    return Kiwi()


class KiwiTokenizer:
    """ROUGE tokenizer: lower-cased kiwipiepy morpheme forms (``빠릅니다`` -> ``빠르``, ``ᆸ니다``)."""

    name = "kiwi"

    def tokenize(self, text: str) -> list[str]:
        if not text.strip():
            return []
        kiwi = _kiwi()
        with _KIWI_LOCK:
            tokens = kiwi.tokenize(text)
        return [t.form.lower() for t in tokens if t.form.strip()]


class CharTokenizer:
    """ROUGE tokenizer: every non-space character, lower-cased."""

    name = "char"

    def tokenize(self, text: str) -> list[str]:
        return [ch for ch in text.lower() if not ch.isspace()]


class WhitespaceTokenizer:
    """ROUGE tokenizer: lower-cased whitespace-separated words (punctuation stays attached)."""

    name = "whitespace"

    def tokenize(self, text: str) -> list[str]:
        return text.lower().split()


class DefaultTokenizer:
    """rouge-score's own tokenizer (lower-case, ``[a-z0-9]`` only, optional Porter stemmer)."""

    name = "default"

    def __init__(self, use_stemmer: bool = True):
        from rouge_score import tokenizers

        self._tok = tokenizers.DefaultTokenizer(use_stemmer=use_stemmer)

    def tokenize(self, text: str) -> list[str]:
        return self._tok.tokenize(text)


class LangAutoTokenizer:
    """ROUGE tokenizer that picks kiwi for Korean text and the default one otherwise
    (language detected per text by script)."""

    name = "auto"

    def __init__(self, use_stemmer: bool = True):
        self._default = DefaultTokenizer(use_stemmer)
        self._kiwi = KiwiTokenizer()

    def tokenize(self, text: str) -> list[str]:
        return (self._kiwi if detect_lang(text) == "ko" else self._default).tokenize(text)


def rouge_tokenizer(name: str = "auto", use_stemmer: bool = True):
    """A tokenizer object for ``rouge_scorer.RougeScorer(tokenizer=...)`` by name:
    ``auto``, ``kiwi``, ``default`` (rouge-score's), ``char`` or ``whitespace``."""
    if name == "kiwi":
        return KiwiTokenizer()
    if name == "char":
        return CharTokenizer()
    if name == "whitespace":
        return WhitespaceTokenizer()
    if name == "default":
        return DefaultTokenizer(use_stemmer)
    if name == "auto":
        return LangAutoTokenizer(use_stemmer)
    raise HarnessError(
        f"unknown ROUGE tokenizer {name!r}",
        fix=f"Use one of: {', '.join(ROUGE_TOKENIZERS)}.",
    )


@functools.lru_cache(maxsize=8)
def _scorer(tokenizer: str, use_stemmer: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(
        list(ROUGE_TYPES), use_stemmer=use_stemmer, tokenizer=rouge_tokenizer(tokenizer, use_stemmer)
    )


def _check_lengths(predictions: Sequence, references: Sequence, what: str) -> None:
    if len(predictions) != len(references):
        raise HarnessError(
            f"{what}: {len(predictions)} predictions but {len(references)} references",
            fix="Pass one reference per prediction.",
        )


def rouge(
    predictions: Sequence[str],
    references: Sequence[str],
    langs: Sequence[str | None] | str | None = None,
    tokenizer: str = "auto",
    use_stemmer: bool = True,
) -> dict[str, list[float]]:
    """Per-sample ROUGE-1/2/L F1 (``rouge1``, ``rouge2``, ``rougeL``) from rouge-score.

    With ``tokenizer="auto"`` each sample is tokenized by kiwipiepy morphemes when its
    language (``langs[i]``, or detected from the reference when None) is Korean, otherwise by
    rouge-score's default tokenizer (Porter stemmer when ``use_stemmer``). Any other
    tokenizer name is used for every sample.
    """
    _check_lengths(predictions, references, "rouge")
    if langs is None or isinstance(langs, str):
        langs = [langs] * len(predictions)
    if len(langs) != len(predictions):
        raise HarnessError(
            f"rouge: {len(langs)} languages for {len(predictions)} predictions",
            fix="Pass one language per sample (or one for all).",
        )
    if tokenizer not in ROUGE_TOKENIZERS:
        rouge_tokenizer(tokenizer)  # raises the HarnessError
    out: dict[str, list[float]] = {k: [] for k in ROUGE_TYPES}
    for pred, ref, lang in zip(predictions, references, langs):
        name = tokenizer
        if name == "auto":
            lang = lang or detect_lang(ref or pred)
            name = "kiwi" if lang == "ko" else "default"
        scores = _scorer(name, use_stemmer).score(ref, pred)
        for k in ROUGE_TYPES:
            out[k].append(float(scores[k].fmeasure))
    return out


def bleu_tokenize_for(lang: str | None) -> str:
    """The sacrebleu tokenizer used for BLEU in ``lang``: ``ko-mecab`` for Korean, ``13a`` else."""
    return BLEU_TOKENIZE.get(lang or "en", "13a")


def _bleu_metric(tokenize: str, effective_order: bool = False):
    from sacrebleu.metrics import BLEU

    try:
        return BLEU(tokenize=tokenize, effective_order=effective_order)
    except (ImportError, ModuleNotFoundError, RuntimeError) as e:
        raise HarnessError(
            f"sacrebleu tokenizer {tokenize!r} is not available ({e})",
            fix="pip install 'sacrebleu[ko]' for ko-mecab, or set bleu tokenize: char.",
        ) from e
    except (ValueError, KeyError) as e:
        raise HarnessError(
            f"unknown sacrebleu tokenizer {tokenize!r}",
            fix="Use one of sacrebleu's tokenizers: 13a, intl, char, ko-mecab, ja-mecab, zh, none.",
        ) from e


def _ci_dict(interval) -> list[float] | None:
    ci = interval.as_ci()
    return list(ci) if ci is not None else None


def _corpus_score(metric, sent_metric, preds: list[str], refs: list[str], n_resamples: int, seed: int):
    """(corpus score, sentence scores, bootstrap CI) for a sacrebleu metric; the interval
    resamples items and recomputes the corpus score from summed sufficient statistics."""
    score = float(metric.corpus_score(preds, [refs]).score)
    sentence = [float(sent_metric.sentence_score(p, [r]).score) for p, r in zip(preds, refs)]
    ci = None
    if n_resamples > 0:
        from harness.metrics.stats import bootstrap_sufficient

        stats = metric._extract_corpus_statistics(preds, [refs])
        ci = _ci_dict(
            bootstrap_sufficient(
                stats,
                lambda row: metric._compute_score_from_stats([int(x) for x in row]).score,
                n_resamples=n_resamples,
                seed=seed,
            )
        )
    return score, sentence, ci


def bleu(
    predictions: Sequence[str],
    references: Sequence[str],
    lang: str | None = "en",
    tokenize: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Corpus BLEU (0-100) from sacrebleu with its bootstrap interval, plus sentence BLEU per
    sample (same tokenizer, ``effective_order=True``).

    ``tokenize`` defaults to ``ko-mecab`` for Korean and ``13a`` otherwise. Returns
    ``{"score", "ci", "n", "tokenize", "signature", "sentence": [...]}``; the interval resamples
    items and recomputes corpus BLEU from summed sufficient statistics (``n_resamples=0``
    skips it).
    """
    _check_lengths(predictions, references, "bleu")
    tok = tokenize or bleu_tokenize_for(lang)
    metric = _bleu_metric(tok)
    sent_metric = _bleu_metric(tok, effective_order=True)
    preds, refs = list(predictions), list(references)
    if not preds:
        return {"score": None, "ci": None, "n": 0, "tokenize": tok, "signature": None, "sentence": []}
    score, sentence, ci = _corpus_score(metric, sent_metric, preds, refs, n_resamples, seed)
    return {
        "score": score,
        "ci": ci,
        "n": len(preds),
        "tokenize": tok,
        "signature": str(metric.get_signature()),
        "sentence": sentence,
    }


def chrf(
    predictions: Sequence[str],
    references: Sequence[str],
    char_order: int = 6,
    word_order: int = 0,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Corpus chrF (0-100; chrF++ with ``word_order=2``) from sacrebleu with its bootstrap
    interval, plus sentence chrF per sample. chrF needs no tokenizer, so it is language-neutral.
    Returns ``{"score", "ci", "n", "signature", "sentence": [...]}``.
    """
    from sacrebleu.metrics import CHRF

    _check_lengths(predictions, references, "chrf")
    metric = CHRF(char_order=char_order, word_order=word_order)
    preds, refs = list(predictions), list(references)
    if not preds:
        return {"score": None, "ci": None, "n": 0, "signature": None, "sentence": []}
    score, sentence, ci = _corpus_score(metric, metric, preds, refs, n_resamples, seed)
    return {
        "score": score,
        "ci": ci,
        "n": len(preds),
        "signature": str(metric.get_signature()),
        "sentence": sentence,
    }


def corpus_statistics(kind: str, predictions: Sequence[str], references: Sequence[str],
                      lang: str | None = "en", tokenize: str | None = None):
    """Per-item additive sufficient statistics of corpus BLEU or chrF and the function that
    turns their column sums into the corpus score: ``(stats: list[list[int]], score_fn)``.
    Paired corpus tests resample these rows (``stats.paired_bootstrap_sufficient``)."""
    _check_lengths(predictions, references, kind)
    if kind == "bleu":
        metric = _bleu_metric(tokenize or bleu_tokenize_for(lang))
    elif kind == "chrf":
        from sacrebleu.metrics import CHRF

        metric = CHRF()
    else:
        raise HarnessError(f"no corpus statistics for metric {kind!r}", fix="Use bleu or chrf.")
    stats = metric._extract_corpus_statistics(list(predictions), [list(references)])

    def score_fn(row) -> float:
        return float(metric._compute_score_from_stats([int(x) for x in row]).score)

    return stats, score_fn
