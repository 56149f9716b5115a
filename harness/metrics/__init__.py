"""Metric registry: the names task YAML uses, what each produces, and one entry point.

``METRICS[name]`` describes a metric: the per-sample outputs it writes (name -> whether
higher is better; None = no preferred direction), whether it also has a corpus-level
score, and a description. ``score_samples`` computes the requested metrics for one model on
one task; the run stage stores per-sample values in ``Sample.metrics`` and aggregates them
(bootstrap CI, paired tests), and stores corpus scores as they come. Perplexity is filled
in by the Engine (summed NLL) and ``harness.metrics.perplexity``; it is skipped here.
Heavy libraries are imported only when their metric is used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError


@dataclass(frozen=True)
class MetricSpec:
    """One metric as task YAML names it."""

    name: str
    description: str
    outputs: dict[str, bool | None]  # per-sample output name -> higher_is_better (None: neutral)
    corpus: tuple[str, ...] = ()  # corpus-level output names (their own score + CI)
    binary: tuple[str, ...] = ()  # outputs that are 0/1 per sample (McNemar applies)
    options: dict[str, str] = field(default_factory=dict)  # option -> what it does
    dynamic: tuple[str, ...] = ()  # prefixes of extra per-sample 0/1 outputs (higher is better)

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


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in [
        MetricSpec(
            "rouge",
            "ROUGE-1/2/L F1 per sample (rouge-score); Korean tokenized by kiwipiepy morphemes",
            {"rouge1": True, "rouge2": True, "rougeL": True},
            options={
                "tokenizer": "auto | kiwi | default | char | whitespace (default auto)",
                "use_stemmer": "Porter stemmer for the default tokenizer (default true)",
            },
        ),
        MetricSpec(
            "bleu",
            "corpus BLEU 0-100 (sacrebleu; ko-mecab for Korean, 13a otherwise) + sentence BLEU per sample",
            {"bleu_sent": True},
            corpus=("bleu",),
            options={"tokenize": "sacrebleu tokenizer, overrides the language default"},
        ),
        MetricSpec(
            "chrf",
            "corpus chrF 0-100 (sacrebleu, language-neutral) + sentence chrF per sample",
            {"chrf_sent": True},
            corpus=("chrf",),
            options={"char_order": "default 6", "word_order": "default 0 (2 = chrF++)"},
        ),
        MetricSpec(
            "bertscore",
            "BERTScore precision/recall/F1 per sample with a local, hub or zoo encoder",
            {"bertscore_p": True, "bertscore_r": True, "bertscore_f1": True},
            options={
                "model": "encoder path, hub id or zoo:NAME (default: zoo encoder for the language)",
                "num_layers": "layer used (default: the zoo's recommendation)",
                "batch_size": "default 32",
                "device": "cpu | cuda (default: cuda when available)",
            },
        ),
        MetricSpec(
            "exact_match",
            "1 when the normalised answer equals the reference",
            {"exact_match": True},
            binary=("exact_match",),
            options={
                "ignore_case": "default true",
                "normalize_whitespace": "default true",
                "strip_punctuation": "default false",
            },
        ),
        MetricSpec(
            "contains",
            "1 when the normalised reference occurs in the answer",
            {"contains": True},
            binary=("contains",),
            options={
                "ignore_case": "default true",
                "normalize_whitespace": "default true",
                "strip_punctuation": "default false",
            },
        ),
        MetricSpec(
            "regex",
            "1 when the pattern is found in the answer ({reference} = the escaped reference)",
            {"regex": True},
            binary=("regex",),
            options={"pattern": "required regular expression", "ignore_case": "default true"},
        ),
        MetricSpec(
            "json",
            "valid JSON object in the answer (0/1), share of reference fields answered correctly, "
            "and json_field:<name> (0/1, None where the reference lacks the field) per field",
            {"valid_json": True, "json_field_acc": True},
            binary=("valid_json",),
            dynamic=("json_field:",),
        ),
        MetricSpec(
            "length",
            "answer length in characters / words / generated tokens, and the empty-answer rate",
            {"length_chars": None, "length_words": None, "length_tokens": None, "empty": False},
            binary=("empty",),
        ),
        MetricSpec(
            "perplexity",
            "token-weighted perplexity of the reference under the model (computed by the Engine)",
            {"perplexity": False, "bits_per_byte": False},
            corpus=("perplexity",),
        ),
    ]
}


def metric_spec(name: str) -> MetricSpec:
    """The registry entry for a metric name, or a HarnessError listing the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise HarnessError(f"unknown metric {name!r}", fix=f"Use one of: {', '.join(METRICS)}.") from None


def output_spec(output: str) -> tuple[MetricSpec, bool | None, bool]:
    """For an output name as it appears in ``score_samples`` results (``rougeL``,
    ``bleu``, ``json_field:sentiment``): its metric, higher_is_better and whether it is 0/1."""
    for spec in METRICS.values():
        try:
            hib = spec.higher_is_better(output)
        except KeyError:
            continue
        return spec, hib, spec.is_binary(output)
    raise HarnessError(
        f"unknown metric output {output!r}", fix=f"Use one of the metrics: {', '.join(METRICS)}."
    )


def _opts(options: dict | None, name: str) -> dict:
    opts = (options or {}).get(name) or {}
    if not isinstance(opts, dict):
        raise HarnessError(
            f"options for metric {name!r} must be a mapping", fix="Write e.g. rouge: {tokenizer: kiwi}."
        )
    return dict(opts)


def _pick(opts: dict, allowed: Sequence[str], name: str) -> dict:
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise HarnessError(
            f"unknown option(s) {', '.join(unknown)} for metric {name!r}",
            fix=f"Allowed: {', '.join(allowed) or 'none'}.",
        )
    return opts


def _scatter(values: Sequence, index: Sequence[int], n: int) -> list:
    out: list = [None] * n
    for i, v in zip(index, values):
        out[i] = v
    return out


def _majority(langs: Sequence[str]) -> str | None:
    return Counter(langs).most_common(1)[0][0] if langs else None


def score_samples(
    metric_names: Sequence[str],
    predictions: Sequence[str | None],
    references: Sequence[Any],
    langs: Sequence[str | None] | None = None,
    options: dict[str, dict] | None = None,
    n_tokens: Sequence[int | None] | None = None,
    seed: int = 0,
) -> tuple[dict[str, list[float | None]], dict[str, dict]]:
    """Compute the named metrics for one model on one task.

    ``predictions[i]`` None means the sample was not generated: its per-sample values are None
    and it is left out of corpus scores. ``options`` maps a metric name to its options (see
    ``METRICS[name].options``). Returns ``(per_sample, corpus)``: per-sample output name ->
    one value per sample; corpus output name -> ``{"value", "ci", "n", "missing",
    "higher_is_better", "stderr", ...info}`` (MetricValue fields plus e.g. ``tokenize`` and
    ``signature``; ``MetricValue.from_dict`` keeps the former). ``perplexity`` is skipped.
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
    for name in metric_names:
        metric_spec(name)

    index = [i for i, p in enumerate(predictions) if p is not None]
    preds = [predictions[i] for i in index]
    refs = [references[i] for i in index]
    from harness.metrics.lexical import detect_lang

    lgs = [langs[i] or detect_lang(refs[k] if isinstance(refs[k], str) else "") for k, i in enumerate(index)]
    missing = n - len(index)
    per_sample: dict[str, list[float | None]] = {}
    corpus: dict[str, dict] = {}

    for name in metric_names:
        opts = _opts(options, name)
        if name == "perplexity":
            continue
        if name == "rouge":
            from harness.metrics.lexical import rouge

            o = _pick(opts, ["tokenizer", "use_stemmer"], name)
            res = rouge(
                preds, refs, lgs, tokenizer=o.get("tokenizer", "auto"), use_stemmer=o.get("use_stemmer", True)
            )
        elif name in ("bleu", "chrf"):
            from harness.metrics import lexical

            if name == "bleu":
                o = _pick(opts, ["tokenize", "n_resamples"], name)
                r = lexical.bleu(
                    preds,
                    refs,
                    lang=_majority(lgs),
                    tokenize=o.get("tokenize"),
                    n_resamples=o.get("n_resamples", 1000),
                    seed=seed,
                )
                info = {"tokenize": r["tokenize"], "signature": r["signature"], "lang": _majority(lgs)}
            else:
                o = _pick(opts, ["char_order", "word_order", "n_resamples"], name)
                r = lexical.chrf(
                    preds,
                    refs,
                    char_order=o.get("char_order", 6),
                    word_order=o.get("word_order", 0),
                    n_resamples=o.get("n_resamples", 1000),
                    seed=seed,
                )
                info = {"signature": r["signature"]}
            corpus[name] = {
                "value": r["score"],
                "ci": r["ci"],
                "n": r["n"],
                "missing": missing,
                "higher_is_better": True,
                "stderr": None,
                **info,
            }
            res = {f"{name}_sent": r["sentence"]}
        elif name == "bertscore":
            from harness.metrics.semantic import bertscore

            o = _pick(opts, ["model", "num_layers", "batch_size", "device"], name)
            res = {
                "bertscore_p": [None] * len(preds),
                "bertscore_r": [None] * len(preds),
                "bertscore_f1": [None] * len(preds),
            }
            if o.get("model"):
                groups = {o["model"]: list(range(len(preds)))}
            else:
                from harness.models.zoo import default_encoder

                groups: dict[str, list[int]] = {}
                for k, lg in enumerate(lgs):
                    groups.setdefault("zoo:" + default_encoder(lg), []).append(k)
            for model, ks in groups.items():
                r = bertscore(
                    [preds[k] for k in ks],
                    [refs[k] for k in ks],
                    model,
                    o.get("num_layers"),
                    batch_size=o.get("batch_size", 32),
                    device=o.get("device"),
                )
                for key, vals in r.items():
                    for k, v in zip(ks, vals):
                        res[key][k] = v
        elif name in ("exact_match", "contains"):
            from harness.metrics import structured

            o = _pick(opts, ["ignore_case", "normalize_whitespace", "strip_punctuation"], name)
            res = {name: getattr(structured, name)(preds, refs, **o)}
        elif name == "regex":
            from harness.metrics.structured import regex_match

            o = _pick(opts, ["pattern", "ignore_case", "normalize_whitespace"], name)
            if not o.get("pattern"):
                raise HarnessError(
                    "metric 'regex' needs a pattern", fix="Add regex: {pattern: '...'} to the task."
                )
            res = {"regex": regex_match(preds, o.pop("pattern"), references=refs, **o)}
        elif name == "json":
            from harness.metrics.structured import json_answer

            _pick(opts, [], name)
            r = json_answer(preds, refs)
            res = {"valid_json": r["valid_json"], "json_field_acc": r["field_acc"]}
            res.update({f"json_field:{k}": v for k, v in r["fields"].items()})
        elif name == "length":
            from harness.metrics.structured import length_stats

            _pick(opts, [], name)
            toks = [n_tokens[i] for i in index] if n_tokens is not None else None
            res = length_stats(preds, toks)
        else:  # pragma: no cover - registry and dispatch out of sync
            raise HarnessError(f"metric {name!r} has no scorer", fix="Report this as a bug.")
        for key, vals in res.items():
            per_sample[key] = _scatter(vals, index, n)
    return per_sample, corpus
