"""Lexical overlap metrics: ROUGE (per sample), BLEU and chrF (corpus + per sentence).

ROUGE comes from ``rouge-score``; its default tokenizer keeps only ``[a-z0-9]``, so every
Korean pair would score 0. ``rouge_tokenizer`` supplies tokenizers that work for Korean
(kiwipiepy morphemes, characters, whitespace); ``"auto"`` picks kiwi for Korean and the
default (Porter-stemmed) tokenizer for English. BLEU/chrF come from ``sacrebleu``; Korean
BLEU uses its ``ko-mecab`` tokenizer (``sacrebleu[ko]``).

The task metrics ``rouge``, ``bleu`` and ``chrf`` are the ``@metric`` functions here; they write
per-sample values (sentence BLEU/chrF for the corpus metrics). ``corpus_score`` is the score
stage's corpus BLEU/chrF with its interval and the statistics its paired tests resample.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Sequence

from harness.errors import HarnessError
from harness.metrics.language import HANGUL
from harness.metrics.registry import HIGHER, Answers, metric

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ROUGE_TOKENIZERS = ("auto", "kiwi", "default", "char", "whitespace")
BLEU_TOKENIZE = {"ko": "ko-mecab", "en": "13a"}



def detect_lang(text: str) -> str:
    """``"ko"`` when Hangul makes up at least 30% of the letters in ``text``, else ``"en"``."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "en"
    hangul = sum(1 for ch in letters if HANGUL.match(ch))
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


def release_kiwi() -> None:
    """Drop the shared Kiwi instance (its model is ~0.5 GB; the next use starts a new one)."""
    with _KIWI_LOCK:
        _kiwi.cache_clear()


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


@metric(
    "rouge",
    description="ROUGE-1/2/L F1 per sample (rouge-score); Korean tokenized by kiwipiepy morphemes",
    outputs={"rouge1": HIGHER, "rouge2": HIGHER, "rougeL": HIGHER},
    options={
        "tokenizer": "auto | kiwi | default | char | whitespace (default auto)",
        "use_stemmer": "Porter stemmer for the default tokenizer (default true)",
    },
)
def rouge_metric(answers: Answers, *, tokenizer: str = "auto", use_stemmer: bool = True) -> dict[str, list[float]]:
    """``rouge`` over a task's answers, each in its own language."""
    return rouge(answers.predictions, answers.references, answers.langs, tokenizer=tokenizer,
                 use_stemmer=use_stemmer)


# ---------------------------------------------------------------- BLEU and chrF (sacrebleu)


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


def _chrf_metric(char_order: int = 6, word_order: int = 0):
    from sacrebleu.metrics import CHRF

    return CHRF(char_order=char_order, word_order=word_order)


def _majority(langs: Sequence[str]) -> str | None:
    return Counter(langs).most_common(1)[0][0] if langs else None


def _sentence_scores(metric, preds: Sequence[str], refs: Sequence[str]) -> list[float]:
    return [float(metric.sentence_score(p, [r]).score) for p, r in zip(preds, refs)]


def _corpus(metric, preds: list[str], refs: list[str], n_resamples: int, seed: int) -> dict:
    """Corpus score of a sacrebleu metric, its bootstrap interval (resampling items and
    recomputing the score from summed sufficient statistics; none when ``n_resamples`` is 0),
    and the per-item statistics + ``score_fn`` that paired corpus tests resample."""

    def score_fn(row) -> float:
        return float(metric._compute_score_from_stats([int(x) for x in row]).score)

    if not preds:
        return {"score": None, "ci": None, "n": 0, "signature": None, "stats": [], "score_fn": score_fn}
    stats = metric._extract_corpus_statistics(preds, [refs])
    score = float(metric._aggregate_and_compute(stats).score)  # what metric.corpus_score computes
    ci = None
    if n_resamples > 0:
        from harness.metrics.stats import bootstrap_sufficient

        interval = bootstrap_sufficient(stats, score_fn, n_resamples=n_resamples, seed=seed).as_ci()
        ci = list(interval) if interval is not None else None
    return {"score": score, "ci": ci, "n": len(preds), "signature": str(metric.get_signature()),
            "stats": stats, "score_fn": score_fn}


def corpus_score(kind: str, predictions: Sequence[str], references: Sequence[str], lang: str | None = "en",
                 tokenize: str | None = None, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Corpus BLEU (tokenizer from ``tokenize`` or ``lang``) or chrF (default orders), 0-100:
    ``{"score", "ci", "n", "signature", "stats", "score_fn"}`` (+ ``"tokenize"`` for BLEU), where
    ``stats`` are the per-item sufficient statistics and ``score_fn`` turns their column sums
    into the corpus score (``stats.paired_bootstrap_sufficient`` resamples them)."""
    _check_lengths(predictions, references, kind)
    if kind == "bleu":
        tok = tokenize or bleu_tokenize_for(lang)
        return {**_corpus(_bleu_metric(tok), list(predictions), list(references), n_resamples, seed),
                "tokenize": tok}
    if kind == "chrf":
        return _corpus(_chrf_metric(), list(predictions), list(references), n_resamples, seed)
    raise HarnessError(f"no corpus score for metric {kind!r}", fix="Use bleu or chrf.")


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
    res = _corpus(metric, preds, refs, n_resamples, seed)
    return {"score": res["score"], "ci": res["ci"], "n": res["n"], "tokenize": tok, "signature": res["signature"],
            "sentence": _sentence_scores(sent_metric, preds, refs)}


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
    _check_lengths(predictions, references, "chrf")
    metric = _chrf_metric(char_order, word_order)
    preds, refs = list(predictions), list(references)
    res = _corpus(metric, preds, refs, n_resamples, seed)
    return {"score": res["score"], "ci": res["ci"], "n": res["n"], "signature": res["signature"],
            "sentence": _sentence_scores(metric, preds, refs)}


def corpus_statistics(kind: str, predictions: Sequence[str], references: Sequence[str],
                      lang: str | None = "en", tokenize: str | None = None):
    """Per-item additive sufficient statistics of corpus BLEU or chrF and the function that
    turns their column sums into the corpus score: ``(stats: list[list[int]], score_fn)``.
    Paired corpus tests resample these rows (``stats.paired_bootstrap_sufficient``)."""
    res = corpus_score(kind, predictions, references, lang=lang, tokenize=tokenize, n_resamples=0)
    return res["stats"], res["score_fn"]


@metric(
    "bleu",
    kind="corpus",
    description="corpus BLEU 0-100 (sacrebleu; ko-mecab for Korean, 13a otherwise) + sentence BLEU per sample",
    outputs={"bleu_sent": HIGHER},
    options={"tokenize": "sacrebleu tokenizer, overrides the language default"},
)
def bleu_metric(answers: Answers, *, tokenize: str | None = None) -> dict[str, list[float]]:
    """Sentence BLEU per sample with the tokenizer of the task's majority language; corpus BLEU
    and its interval are the score stage's (``corpus_score``)."""
    tok = tokenize or bleu_tokenize_for(_majority(answers.langs))
    sent_metric = _bleu_metric(tok, effective_order=True)
    return {"bleu_sent": _sentence_scores(sent_metric, answers.predictions, answers.references)}


@metric(
    "chrf",
    kind="corpus",
    description="corpus chrF 0-100 (sacrebleu, language-neutral) + sentence chrF per sample",
    outputs={"chrf_sent": HIGHER},
    options={"char_order": "default 6", "word_order": "default 0 (2 = chrF++)"},
)
def chrf_metric(answers: Answers, *, char_order: int = 6, word_order: int = 0) -> dict[str, list[float]]:
    """Sentence chrF per sample; corpus chrF and its interval are the score stage's."""
    metric = _chrf_metric(char_order, word_order)
    return {"chrf_sent": _sentence_scores(metric, answers.predictions, answers.references)}
