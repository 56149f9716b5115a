"""Per-sample metric values for one model on one task: the generate stage's one call.

``score_per_sample`` checks the requested metrics and their options against the registry,
leaves unanswered samples out, calls each metric's registered function and puts the values
back in sample order. Corpus scores (BLEU, chrF, perplexity) and every interval and paired
test are the score stage's work (``harness.stages.score``); nothing here is resampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import HarnessError
from harness.metrics.lexical import detect_lang
from harness.metrics.registry import Answers, metric_options, metric_spec


def _scatter(values: Sequence, index: Sequence[int], n: int) -> list:
    out: list = [None] * n
    for i, v in zip(index, values):
        out[i] = v
    return out


def score_per_sample(
    metric_names: Sequence[str],
    predictions: Sequence[str | None],
    references: Sequence[Any],
    langs: Sequence[str | None] | None = None,
    options: dict[str, dict] | None = None,
    n_tokens: Sequence[int | None] | None = None,
) -> dict[str, list[float | None]]:
    """Per-sample values of the named metrics: output name -> one value per sample.

    ``predictions[i]`` None means the sample was not generated: its values are None.
    ``langs[i]`` None is detected from the reference. ``options`` maps a metric name to its
    options (``METRICS[name].options``); ``n_tokens`` are the generated-token counts (length).
    Perplexity writes nothing here: the Engine's summed NLL is stored by the generate stage.
    """
    n = len(predictions)
    if len(references) != n:
        raise HarnessError(
            f"{n} predictions but {len(references)} references", fix="Pass one reference per prediction."
        )
    if langs is None:
        langs = [None] * n
    if len(langs) != n:
        raise HarnessError(f"{len(langs)} languages for {n} samples", fix="Pass one language per sample.")
    opts = {name: metric_options(name, options) for name in metric_names}  # all checked before any runs

    index = [i for i, p in enumerate(predictions) if p is not None]
    refs = [references[i] for i in index]
    answers = Answers(
        predictions=[predictions[i] for i in index],
        references=refs,
        langs=[langs[i] or detect_lang(refs[k] if isinstance(refs[k], str) else "") for k, i in enumerate(index)],
        n_tokens=[n_tokens[i] for i in index] if n_tokens is not None else None,
    )
    per_sample: dict[str, list[float | None]] = {}
    for name in metric_names:
        for key, vals in metric_spec(name).scorer(answers, **opts[name]).items():
            per_sample[key] = _scatter(vals, index, n)
    return per_sample
