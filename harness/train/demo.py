"""``harness demo --retrain``: rebuild the demo data and both demo adapters.

SmolLM2-135M-Instruct (shipped by a PyPI package, see ``harness zoo list``) gets an SFT LoRA
adapter on the bilingual demo instructions, then a DPO LoRA adapter on top of that SFT adapter.
Every demo hyperparameter lives in ``DEMO`` below; they were chosen so that both steps finish
in minutes on two CPU cores and still move the model measurably (SFT beats base on the held-out
test, DPO beats SFT on preference accuracy). The closing note checks exactly that.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

DEMO: dict[str, Any] = {
    "model": "zoo:smollm2-135m-instruct",
    "seed": 0,
    "sft": {
        "method": "lora",
        "prompt_format": "chat",
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
        "epochs": 1.0,
        "max_steps": 40,  # 320 of the 433 training rows: enough to learn the short answer style
        "learning_rate": 1e-3,
        "batch_size": 8,
        "grad_accum": 1,
        "max_length": 256,  # the longest Korean prompt is ~125 SmolLM2 tokens
        "eval_steps": 20,
        "logging_steps": 5,
        "warmup_ratio": 0.05,
    },
    "dpo": {
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
        "beta": 0.1,
        "loss_type": "sigmoid",
        "epochs": 1.0,
        "max_steps": 30,  # 120 preference pairs
        "learning_rate": 2e-4,
        "batch_size": 4,
        "grad_accum": 1,
        "max_length": 256,
        "eval_steps": 20,
        "logging_steps": 5,
        "warmup_ratio": 0.05,
    },
}


def demo_options(demo_dir: Path, *, max_steps: int | None = None, config: dict[str, Any] | None = None):
    """(SFTOptions, DPOOptions) of the demo, reading ``demo_dir/data`` and writing
    ``demo_dir/sft`` and ``demo_dir/dpo``; ``max_steps`` overrides both (smoke tests)."""
    from harness.train.common import LoraOptions
    from harness.train.dpo import DPOOptions
    from harness.train.sft import SFTOptions

    cfg = config or DEMO
    data = Path(demo_dir) / "data"
    sft_cfg = dict(cfg["sft"])
    dpo_cfg = dict(cfg["dpo"])
    if max_steps is not None:
        sft_cfg["max_steps"] = dpo_cfg["max_steps"] = max_steps
    sft = SFTOptions(model=cfg["model"], data=str(data / "sft_train.jsonl"), val_data=str(data / "sft_val.jsonl"),
                     output=str(Path(demo_dir) / "sft"), split=None, seed=cfg["seed"],
                     lora=LoraOptions(**sft_cfg.pop("lora")), **sft_cfg)
    dpo = DPOOptions(data=str(data / "dpo_train.jsonl"), val_data=str(data / "dpo_val.jsonl"),
                     output=str(Path(demo_dir) / "dpo"), sft_adapter=sft.output, seed=cfg["seed"],
                     lora=LoraOptions(**dpo_cfg.pop("lora")), **dpo_cfg)
    return sft, dpo


def closing_checks(demo_dir: Path) -> dict[str, dict[str, float]]:
    """Response perplexity on test.jsonl (base, sft) and preference accuracy on dpo_test.jsonl
    (sft, dpo): the numbers the retrained adapters should improve."""
    from harness.tasks import read_rows
    from harness.train.evaluate import load_checkpoint, preference_accuracy, response_perplexity

    demo_dir = Path(demo_dir)
    test = read_rows(demo_dir / "data" / "test.jsonl")
    prefs = read_rows(demo_dir / "data" / "dpo_test.jsonl")
    out: dict[str, dict[str, float]] = {}
    for name, ref in (("base", DEMO["model"]), ("sft", demo_dir / "sft"), ("dpo", demo_dir / "dpo")):
        model, tok, fmt = load_checkpoint(ref, prompt_format=DEMO["sft"]["prompt_format"])
        out[name] = {"response_ppl": response_perplexity(model, tok, test, fmt),
                     "preference_acc": preference_accuracy(model, tok, prefs, fmt)}
        del model
    return out


def retrain_demo(demo_dir: Path, quiet: bool = False, *, max_steps: int | None = None, check: bool = True) -> dict[str, Any]:
    """Regenerate the demo data, train the SFT adapter, then the DPO adapter on it.
    ``max_steps`` cuts both runs short (a smoke test). Returns paths, times and checks."""
    from harness.data.demo_data import write
    from harness.train.common import progress_bar
    from harness.train.dpo import train_dpo
    from harness.train.sft import train_sft

    def say(msg: str) -> None:
        if not quiet:
            from rich.console import Console

            Console(stderr=True).print(msg, highlight=False)

    demo_dir = Path(demo_dir)
    counts = write(demo_dir / "data")  # the generator's own seed: same files as shipped
    say(f"demo data: {demo_dir / 'data'} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    sft_opts, dpo_opts = demo_options(demo_dir, max_steps=max_steps)
    result: dict[str, Any] = {}
    t0 = time.time()
    with progress_bar("SFT (LoRA)", quiet) as cb:
        result["sft"] = train_sft(sft_opts, progress=cb)
    result["sft_seconds"] = round(time.time() - t0, 1)
    say(f"SFT adapter: {result['sft']} ({result['sft_seconds']} s)")
    t0 = time.time()
    with progress_bar("DPO (LoRA on SFT)", quiet) as cb:
        result["dpo"] = train_dpo(dpo_opts, progress=cb)
    result["dpo_seconds"] = round(time.time() - t0, 1)
    say(f"DPO adapter: {result['dpo']} ({result['dpo_seconds']} s)")
    if check:
        checks = closing_checks(demo_dir)
        result["checks"] = checks
        say(f"held-out response perplexity: base {checks['base']['response_ppl']:.2f} -> "
            f"SFT {checks['sft']['response_ppl']:.2f}")
        say(f"preference accuracy (dpo_test): SFT {checks['sft']['preference_acc']:.3f} -> "
            f"DPO {checks['dpo']['preference_acc']:.3f}")
    return result
