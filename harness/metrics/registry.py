"""The metric registry: the names task YAML uses, what each writes, and the options it takes.

Each metric is registered by one decorator on the function that computes it, next to its
implementation (lexical.py, semantic.py, structured.py, perplexity.py)::

    @metric("chrf", kind="corpus", outputs={"chrf_sent": HIGHER}, description="...",
            options={"char_order": "default 6", "word_order": "default 0 (2 = chrF++)"})
    def chrf_metric(answers: Answers, *, char_order: int = 6, word_order: int = 0): ...

A metric function takes one model's ``Answers`` on one task and the task's options for it as
keyword-only arguments, and returns per-sample values by output name. The decorator refuses a
function whose keyword-only arguments are not exactly the declared options, so what task
validation accepts, what the docs list and what the function takes cannot drift apart.

``kind="corpus"`` metrics (BLEU, chrF, perplexity) also have a corpus-level score under the
metric's own name; the score stage computes it (``harness.stages.score``). Everything else is
aggregated as the mean of its per-sample values.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import HarnessError, did_you_mean

# Direction of an output: higher is better, lower is better, or neither (lengths).
HIGHER, LOWER, NEUTRAL = True, False, None

Kind = Literal["per-sample", "corpus"]
PerSampleValues = dict[str, list[float | None]]


@dataclass(frozen=True)
class Answers:
    """What a metric function scores: one model's answers on one task. Only answered samples
    are here (the caller puts None back for the rest); ``langs`` is each sample's language
    (given, or detected from its reference); ``n_tokens`` the generated-token counts, if known."""

    predictions: list[str]
    references: list[Any]
    langs: list[str]
    n_tokens: list[int | None] | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One metric as task YAML names it."""

    name: str
    description: str
    outputs: dict[str, bool | None]  # per-sample output name -> HIGHER / LOWER / NEUTRAL
    kind: Kind = "per-sample"
    binary: tuple[str, ...] = ()  # outputs that are 0/1 per sample (McNemar applies)
    options: dict[str, str] = field(default_factory=dict)  # option -> what it does
    dynamic: tuple[str, ...] = ()  # prefixes of extra per-sample 0/1 outputs (higher is better)
    scorer: Callable[..., PerSampleValues] | None = field(default=None, compare=False, repr=False)

    @property
    def corpus(self) -> tuple[str, ...]:
        """Corpus-level output names (their own score + CI): the metric's name for corpus metrics."""
        return (self.name,) if self.kind == "corpus" else ()

    @property
    def per_sample(self) -> bool:
        """Whether the metric has per-sample values (bootstrap intervals, paired tests)."""
        return bool(self.outputs)

    def higher_is_better(self, output: str) -> bool | None:
        """Direction of one output (per-sample or corpus)."""
        if output in self.outputs:
            return self.outputs[output]
        if output in self.corpus:
            return True
        if output.startswith(self.dynamic) and self.dynamic:
            return True
        raise KeyError(output)

    def is_binary(self, output: str) -> bool:
        """Whether an output is 0/1 per sample (paired tests use McNemar's test)."""
        return output in self.binary or bool(self.dynamic and output.startswith(self.dynamic))


METRICS: dict[str, MetricSpec] = {}
# The modules whose metric functions fill METRICS; their order (then the order of definition in
# each) is the registry's order, the one error messages list, whichever module is imported first.
METRIC_MODULES = ("harness.metrics.lexical", "harness.metrics.semantic", "harness.metrics.structured",
                  "harness.metrics.perplexity", "harness.metrics.language", "harness.metrics.preference")


def _position(spec: MetricSpec) -> tuple[int, int]:
    module = getattr(spec.scorer, "__module__", None)
    rank = METRIC_MODULES.index(module) if module in METRIC_MODULES else len(METRIC_MODULES)
    return rank, spec.scorer.__code__.co_firstlineno if spec.scorer is not None else 0


def keyword_options(fn: Callable) -> list[str]:
    """The keyword-only arguments of a metric function: the options it takes."""
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def metric(
    name: str,
    *,
    description: str,
    outputs: Mapping[str, bool | None],
    kind: Kind = "per-sample",
    binary: tuple[str, ...] = (),
    options: Mapping[str, str] | None = None,
    dynamic: tuple[str, ...] = (),
) -> Callable[[Callable[..., PerSampleValues]], Callable[..., PerSampleValues]]:
    """Register the decorated function as metric ``name`` (see the module docstring)."""
    options = dict(options or {})

    def register(fn: Callable[..., PerSampleValues]) -> Callable[..., PerSampleValues]:
        declared, taken = list(options), keyword_options(fn)
        if declared != taken:
            raise TypeError(f"metric {name!r}: options {declared} differ from the keyword-only arguments "
                            f"{taken} of {fn.__qualname__}")
        if kind not in ("per-sample", "corpus"):
            raise TypeError(f"metric {name!r}: kind must be 'per-sample' or 'corpus', not {kind!r}")
        unknown = set(binary) - set(outputs)
        if unknown:
            raise TypeError(f"metric {name!r}: binary outputs {sorted(unknown)} are not among its outputs")
        old = METRICS.get(name)
        if old is not None and old.scorer is not None and old.scorer.__qualname__ != fn.__qualname__:
            raise TypeError(f"metric {name!r} is registered twice ({old.scorer.__qualname__}, {fn.__qualname__})")
        METRICS[name] = MetricSpec(name=name, description=description, outputs=dict(outputs), kind=kind,
                                   binary=tuple(binary), options=options, dynamic=tuple(dynamic), scorer=fn)
        ordered = sorted(METRICS.values(), key=_position)
        METRICS.clear()
        METRICS.update((s.name, s) for s in ordered)
        return fn

    return register


def metric_spec(name: str, where: str | None = None) -> MetricSpec:
    """The registry entry for a metric name, or a HarnessError listing the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise HarnessError(f"unknown metric {name!r}{did_you_mean(name, METRICS)}", where=where,
                           fix=f"Use one of: {', '.join(METRICS)}.") from None


def output_spec(output: str) -> tuple[MetricSpec, bool | None, bool]:
    """For an output name as metric functions write it (``rougeL``, ``bleu``,
    ``json_field:sentiment``): its metric, higher_is_better and whether it is 0/1."""
    for spec in METRICS.values():
        try:
            hib = spec.higher_is_better(output)
        except KeyError:
            continue
        return spec, hib, spec.is_binary(output)
    raise HarnessError(
        f"unknown metric output {output!r}", fix=f"Use one of the metrics: {', '.join(METRICS)}."
    )


def metric_options(name: str, options: Mapping[str, Any] | None, where: str | None = None) -> dict[str, Any]:
    """The options ``options`` (a task's ``metric_options``) gives metric ``name``, checked
    against the registry: an unknown metric, options that are not a mapping, or an option the
    metric does not take is a HarnessError (``where``: the task file, when known)."""
    spec = metric_spec(name, where)
    opts = (options or {}).get(name) or {}
    if not isinstance(opts, Mapping):
        raise HarnessError(f"options for metric {name!r} must be a mapping", where=where,
                           fix="Write e.g. rouge: {tokenizer: kiwi}.")
    unknown = sorted(set(opts) - set(spec.options))
    if unknown:
        raise HarnessError(f"unknown option(s) {', '.join(unknown)} for metric {name!r}"
                           f"{did_you_mean(unknown[0], spec.options)}", where=where,
                           fix=f"Allowed: {', '.join(spec.options) or 'none'}.")
    return dict(opts)


# The metric modules register their functions when imported (they import ``metric`` from here,
# defined above), so importing the registry from anywhere gives all of them.
for _module in METRIC_MODULES:
    importlib.import_module(_module)
