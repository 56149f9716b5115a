"""Language consistency: is the answer written in the language of the prompt?

KoMT-Bench penalises answers in the wrong language; a small model tuned on English data often
answers a Korean prompt in English. ``lang_consistency`` measures it per sample:

- letters are the characters ``str.isalpha`` accepts (Unicode categories L*: Hangul, Latin, Han,
  kana, ...); digits, punctuation, spaces and emoji are not letters;
- text inside fenced (```` ``` ````) or inline (`` ` ``) code is left out: code is no language;
- ``lang_share`` is the share of the answer's letters written in the script of the sample's
  language: for Korean, Hangul syllables and jamo (U+AC00-D7A3, U+1100-11FF, U+3130-318F,
  U+A960-A97F, U+D7B0-D7FF; Hangul compatibility and half-width jamo); for English, Latin letters
  (A-Z, a-z and the Latin-1/Extended-A/B letters); Japanese counts kana and Han, Chinese Han;
- ``lang_match`` is 1 when ``lang_share >= threshold`` (default 0.5).

An answer with no letters at all (a number such as ``86``, symbols, code only) cannot be in the
wrong language: ``lang_match`` 1, ``lang_share`` None. An empty answer gets None for both (the
``length`` metric's ``empty`` counts those). A language with no script here gets None.
"""

from __future__ import annotations

import re

from harness.metrics.registry import HIGHER, Answers, metric

HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\ud7b0-\ud7ff\uffa0-\uffdc]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
SCRIPTS = {
    "ko": (HANGUL,),
    "en": (_LATIN,),
    "ja": (_KANA, _HAN),
    "zh": (_HAN,),
}
_CODE = re.compile(r"```.*?(```|$)|`[^`\n]*`", re.DOTALL)


def script_share(text: str, lang: str) -> float | None:
    """Share of the letters of ``text`` (code left out) in ``lang``'s script; None when the text
    has no letters or the language has no script here."""
    patterns = SCRIPTS.get(lang)
    letters = [ch for ch in _CODE.sub(" ", text) if ch.isalpha()]
    if patterns is None or not letters:
        return None
    return sum(1 for ch in letters if any(p.match(ch) for p in patterns)) / len(letters)


def language_match(text: str, lang: str, threshold: float = 0.5) -> tuple[float | None, float | None]:
    """``(lang_match, lang_share)`` of one answer (see the module docstring)."""
    if not text.strip() or lang not in SCRIPTS:
        return None, None
    share = script_share(text, lang)
    if share is None:  # numbers, symbols or code only: no language to be wrong in
        return 1.0, None
    return float(share >= threshold), share


@metric(
    "lang_consistency",
    description="1 when the answer is in the sample's language: the share of its letters in that "
    "language's script (Hangul for Korean, Latin for English; code left out) reaches the threshold",
    outputs={"lang_match": HIGHER, "lang_share": HIGHER},
    binary=("lang_match",),
    options={"threshold": "share of letters in the expected script needed to pass (default 0.5)"},
)
def lang_consistency_metric(answers: Answers, *, threshold: float = 0.5) -> dict[str, list[float | None]]:
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0.0 < threshold <= 1.0:
        from harness.errors import HarnessError

        raise HarnessError(f"lang_consistency: threshold must be a number in (0, 1], got {threshold!r}",
                           fix="Write e.g. metric_options: {lang_consistency: {threshold: 0.5}}.")
    pairs = [language_match(p, lang, threshold) for p, lang in zip(answers.predictions, answers.langs)]
    return {"lang_match": [m for m, _ in pairs], "lang_share": [s for _, s in pairs]}
