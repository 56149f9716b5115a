"""Quick checks of a trained checkpoint: preference accuracy (does the model give the chosen
answer a higher likelihood than the rejected one?) and held-out response perplexity.

``retrain_demo`` prints these after training so a run shows at once whether SFT and DPO moved
the model in the intended direction; ``harness run`` is the full evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def scored_texts(instruction: str, input: str, answer: str, fmt, system: str | None = None) -> tuple[str, str]:
    """(prompt, target) for scoring an answer's log-likelihood: the prompt exactly as generation
    renders it, the target the answer followed by the format's end-of-turn marker (what SFT and
    DPO train on). The preference stage and the checks below both score through this."""
    from harness.models.prompts import render_training

    prompt, completion = render_training(instruction, input or "", answer, fmt, system)
    return prompt, completion.rstrip(" \n")


def _prompt_and_target(row: dict[str, Any], answer: Any, fmt) -> tuple[str, str]:
    from harness.train.data import _as_text

    if "prompt" in row and isinstance(row["prompt"], str):
        instruction, inp = row["prompt"], ""
    else:
        instruction, inp = row.get("instruction", ""), row.get("input") or ""
    return scored_texts(instruction, inp, _as_text(answer), fmt, row.get("system"))


def response_logprobs(model, tokenizer, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
    """Sum of log p(target tokens | prompt) per pair (prompt tokens are not scored)."""
    from harness.backends.hf import HFEngine

    engine = HFEngine(model, tokenizer, batch_size=8)
    return [-n.nll_sum for n in engine.token_nll(list(prompts), list(targets))]


def preference_accuracy(model, tokenizer, rows: Sequence[dict[str, Any]], prompt_format) -> float:
    """Mean over preference rows of [log p(chosen | prompt) > log p(rejected | prompt)]: the
    response-only log-likelihood, each answer followed by the format's end-of-turn marker (the
    same computation as a ``type: preference`` task's ``pref_acc``)."""
    from harness.metrics.preference import preference_accuracy as accuracy

    if not rows:
        raise ValueError("preference_accuracy: no rows")
    prompts, chosen, rejected = [], [], []
    for row in rows:
        p, c = _prompt_and_target(row, row["chosen"], prompt_format)
        _, r = _prompt_and_target(row, row["rejected"], prompt_format)
        prompts.append(p)
        chosen.append(c)
        rejected.append(r)
    lp_c = response_logprobs(model, tokenizer, prompts, chosen)
    lp_r = response_logprobs(model, tokenizer, prompts, rejected)
    return accuracy(lp_c, lp_r)


def response_perplexity(model, tokenizer, rows: Sequence[dict[str, Any]], prompt_format) -> float:
    """exp(mean NLL per token) of the reference ``output`` given the prompt, over Alpaca rows."""
    from harness.backends.hf import HFEngine

    pairs = [_prompt_and_target(r, r["output"], prompt_format) for r in rows]
    engine = HFEngine(model, tokenizer, batch_size=8)
    nlls = engine.token_nll([p for p, _ in pairs], [t for _, t in pairs])
    tokens = sum(n.n_tokens for n in nlls)
    return math.exp(sum(n.nll_sum for n in nlls) / tokens) if tokens else float("nan")


def load_checkpoint(ref: str | Path, *, prompt_format: str | None = None):
    """(model, tokenizer, PromptFormat) of a base (zoo:NAME / folder) or of an adapter folder
    written by ``harness train`` (the chain under it is followed the way harness.yaml would)."""
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.resolve import resolve_models

    ref = str(ref)
    p = Path(ref)
    spec = ModelSpec(adapter=str(p.resolve()), prompt_format=prompt_format) if (p / "adapter_config.json").is_file() \
        else ModelSpec(path=ref, prompt_format=prompt_format)
    pool = ModelPool(resolve_models({"m": spec}, Path.cwd()), device="cpu", dtype="float32")
    model, tok = pool.model_and_tokenizer("m")
    return model, tok, pool.format("m")
