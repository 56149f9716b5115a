"""BERTScore (precision, recall, F1 per sample) with a local, hub or zoo encoder.

``bert_score.score`` reloads the encoder on every call; here one ``BERTScorer`` per
(model, layers, device) is built once and reused. A tokenizer saved with a huge
``model_max_length`` (1e30, as many sentence-transformers folders have) makes bert_score
raise ``OverflowError``; it is clamped to the encoder's position limit (at most 512).
Rescaling with baselines is not offered: bert_score has none for Korean or local models.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from harness.errors import HarnessError
from harness.metrics.registry import HIGHER, Answers, metric

_SANE_MAX_LENGTH = 512
_CACHE: dict[tuple[str, int, str], object] = {}
_CACHE_MAX = 2
_LOCK = threading.Lock()


def resolve_encoder(model: str, num_layers: int | None = None) -> tuple[str, int]:
    """``(model_type, num_layers)`` for bert_score: a ``zoo:NAME`` is materialised through
    ``harness.models.zoo`` (its recommended layer when ``num_layers`` is None); a path is made
    absolute; a hub id is passed through. ``num_layers`` is required for non-zoo models."""
    if not model:
        raise HarnessError("bertscore needs a model", fix="Set bertscore model: zoo:minilm-l6 (or a path).")
    if model.startswith("zoo:"):
        from harness.models.zoo import encoder_layers, zoo_path

        path = str(zoo_path(model))
        return path, int(num_layers if num_layers is not None else encoder_layers(model))
    p = Path(model).expanduser()
    if p.exists():
        model_type = str(p.resolve())
    elif model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise HarnessError(
            f"bertscore model folder {model!r} does not exist",
            fix="Point bertscore model to a local encoder folder, a hub id, or zoo:minilm-l6.",
        )
    else:
        model_type = model
    if num_layers is None:
        raise HarnessError(
            f"bertscore model {model!r} needs num_layers",
            fix="Set bertscore num_layers (e.g. 6 for MiniLM-L6, 9 for a 12-layer encoder).",
        )
    return model_type, int(num_layers)


def _sane_max_length(tokenizer, model) -> None:
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or _SANE_MAX_LENGTH
    # RoBERTa/XLM-R reserve two positions for the padding offset
    if getattr(getattr(model, "config", None), "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2
    limit = min(int(limit), _SANE_MAX_LENGTH)
    mml = getattr(tokenizer, "model_max_length", None)
    if mml is None or mml > limit:
        tokenizer.model_max_length = limit


def _check_layers(model_type: str, num_layers: int) -> None:
    """Refuse a layer beyond a local encoder's depth before loading its weights."""
    cfg_path = Path(model_type) / "config.json"
    if not cfg_path.is_file():
        return
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        return
    depth = cfg.get("num_hidden_layers") or cfg.get("n_layers") or cfg.get("num_layers")
    if isinstance(depth, int) and not 0 <= num_layers <= depth:
        raise HarnessError(
            f"bertscore num_layers={num_layers} does not fit {model_type!r} ({depth} layers)",
            fix=f"Set bertscore num_layers between 1 and {depth}.",
        )


def get_scorer(model_type: str, num_layers: int, device: str | None = None):
    """The cached ``bert_score.BERTScorer`` for a resolved encoder (built on first use)."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    key = (model_type, int(num_layers), device)
    with _LOCK:
        scorer = _CACHE.get(key)
        if scorer is not None:
            return scorer
        _check_layers(model_type, num_layers)
        from bert_score import BERTScorer

        _stable_batches()

        try:
            scorer = BERTScorer(model_type=model_type, num_layers=num_layers, device=device)
        except OSError as e:
            raise HarnessError(
                f"cannot load bertscore encoder {model_type!r} ({str(e).splitlines()[0]})",
                fix="Use a local folder or zoo:minilm-l6 / zoo:multilingual-e5-small when offline.",
            ) from e
        except AssertionError as e:  # bert_score's check of num_layers against the encoder
            raise HarnessError(
                f"bertscore num_layers={num_layers} does not fit {model_type!r} ({e})",
                fix="Set bertscore num_layers to at most the encoder's layer count.",
            ) from e
        _sane_max_length(scorer._tokenizer, scorer._model)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = scorer
        return scorer


def _ordered_set(items):
    """``set`` with a fixed order (first occurrence): see ``_stable_batches``."""
    return dict.fromkeys(items)


def _stable_batches() -> None:
    """bert_score de-duplicates sentences through ``set`` and sorts them by word count before
    batching, so sentences of equal length land in batches in an order that depends on
    PYTHONHASHSEED: the same inputs then score differently (~1e-7) in two processes, and a
    resumed run could differ from an uninterrupted one. Its module's ``set`` is replaced by an
    insertion-ordered one (its two uses only iterate the result), which makes batches, and so
    scores, the same in every process."""
    import bert_score.utils as bs_utils

    if getattr(bs_utils, "set", None) is not _ordered_set:
        bs_utils.set = _ordered_set


def clear_cache() -> None:
    """Drop the cached encoders (frees their memory)."""
    with _LOCK:
        _CACHE.clear()


def bertscore(
    predictions: Sequence[str],
    references: Sequence[str],
    model: str,
    num_layers: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, list[float]]:
    """Per-sample BERTScore ``{"bertscore_p", "bertscore_r", "bertscore_f1"}`` (no baseline
    rescaling, no idf) from the encoder ``model`` (path, hub id or ``zoo:NAME``) at layer
    ``num_layers`` (defaults to the zoo's recommendation for zoo models). A pair with an
    empty prediction or reference scores 0, as bert_score defines it."""
    if len(predictions) != len(references):
        raise HarnessError(
            f"bertscore: {len(predictions)} predictions but {len(references)} references",
            fix="Pass one reference per prediction.",
        )
    model_type, layers = resolve_encoder(model, num_layers)
    if not predictions:
        return {"bertscore_p": [], "bertscore_r": [], "bertscore_f1": []}
    scorer = get_scorer(model_type, layers, device)
    # bert_score sets the raw scores of an empty side to 0 (and its empty-string path calls a
    # tokenizer method transformers 5 no longer has): score only the non-empty pairs
    keep = [
        i for i, (c, r) in enumerate(zip(predictions, references)) if (c or "").strip() and (r or "").strip()
    ]
    out = {k: [0.0] * len(predictions) for k in ("bertscore_p", "bertscore_r", "bertscore_f1")}
    if not keep:
        return out
    import torch

    with torch.inference_mode():
        p, r, f = scorer.score(
            [predictions[i] for i in keep], [references[i] for i in keep], batch_size=batch_size
        )
    for key, vals in (("bertscore_p", p), ("bertscore_r", r), ("bertscore_f1", f)):
        for i, v in zip(keep, vals.tolist()):
            out[key][i] = float(v)
    return out


@metric(
    "bertscore",
    description="BERTScore precision/recall/F1 per sample with a local, hub or zoo encoder",
    outputs={"bertscore_p": HIGHER, "bertscore_r": HIGHER, "bertscore_f1": HIGHER},
    options={
        "model": "encoder path, hub id or zoo:NAME (default: zoo encoder for the language)",
        "num_layers": "layer used (default: the zoo's recommendation)",
        "batch_size": "default 32",
        "device": "cpu | cuda (default: cuda when available)",
    },
)
def bertscore_metric(
    answers: Answers,
    *,
    model: str | None = None,
    num_layers: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, list[float | None]]:
    """``bertscore`` over a task's answers: with ``model`` for every sample, otherwise each
    sample with the zoo encoder for its language (``zoo.default_encoder``)."""
    preds, refs = answers.predictions, answers.references
    out: dict[str, list[float | None]] = {k: [None] * len(preds) for k in ("bertscore_p", "bertscore_r", "bertscore_f1")}
    if model:
        groups = {model: list(range(len(preds)))}
    else:
        from harness.models.zoo import default_encoder

        groups = {}
        for k, lang in enumerate(answers.langs):
            groups.setdefault("zoo:" + default_encoder(lang), []).append(k)
    for encoder, ks in groups.items():
        scores = bertscore([preds[k] for k in ks], [refs[k] for k in ks], encoder, num_layers,
                           batch_size=batch_size, device=device)
        for key, vals in scores.items():
            for k, v in zip(ks, vals):
                out[key][k] = v
    return out
