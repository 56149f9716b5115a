"""Metrics: pure functions over one model's answers on one task.

``registry`` holds what task YAML can name (``METRICS``, filled by the ``@metric`` functions of
``lexical``, ``semantic``, ``structured`` and ``perplexity``); ``per_sample.score_per_sample``
computes per-sample values (the generate stage); ``stats`` has the bootstrap intervals and
paired tests the score stage uses, together with the corpus scores of ``lexical`` and
``perplexity``. Heavy libraries are imported only when their metric runs.
"""

from harness.metrics.per_sample import score_per_sample
from harness.metrics.registry import (
    HIGHER,
    LOWER,
    METRICS,
    NEUTRAL,
    Answers,
    MetricSpec,
    metric,
    metric_options,
    metric_spec,
    output_spec,
)

__all__ = [
    "HIGHER",
    "LOWER",
    "METRICS",
    "NEUTRAL",
    "Answers",
    "MetricSpec",
    "metric",
    "metric_options",
    "metric_spec",
    "output_spec",
    "score_per_sample",
]
