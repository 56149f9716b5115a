"""``harness train sft``: supervised fine-tuning with trl's SFTTrainer (LoRA, QLoRA or full).

Loss is on the response only (prompt tokens get label -100) unless ``train_on_prompt``. When
the data is one file, a seeded train/val/test split is written next to the checkpoint so
evaluation uses the held-out part. ``harness-train.json`` records how the checkpoint was made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.train import common
from harness.train import data as tdata
from harness.train.manifest import model_fingerprint


@dataclass
class SFTOptions:
    model: str  # zoo:NAME, folder or hub id
    data: str  # training file (or hf:...)
    output: str
    val_data: str | None = None
    method: str = "lora"  # lora | qlora | full
    prompt_format: str | None = None  # default: the tokenizer's chat template, else alpaca
    lora: common.LoraOptions = field(default_factory=common.LoraOptions)
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    split: str | None = "85/5/10"  # used when no val_data is given
    seed: int = 0
    train_on_prompt: bool = False
    eval_steps: int = 20
    logging_steps: int = 5
    early_stopping_patience: int | None = None
    warmup_ratio: float = 0.05
    cpu: bool = False
    trust_remote_code: bool = False
    report_to: str = "none"  # none | wandb | mlflow | tensorboard (comma list): the trainer's own logging


def _prepare_data(opts: SFTOptions, fmt_obj, out: Path) -> tuple[list, list, dict[str, Any]]:
    rows, where = tdata.read_training_rows(opts.data)
    fmt = tdata.detect_format(rows, where)
    tdata.validate_rows(rows, fmt, where)
    info: dict[str, Any] = {"train": where, "format": fmt}
    if not opts.data.startswith("hf:"):
        info["train_sha256"] = tdata.file_sha256(where)
    if opts.val_data:
        val_rows, vwhere = tdata.read_training_rows(opts.val_data)
        tdata.validate_rows(val_rows, tdata.detect_format(val_rows, vwhere), vwhere)
        info["val"] = vwhere
        if not opts.val_data.startswith("hf:"):
            info["val_sha256"] = tdata.file_sha256(vwhere)
        train_rows = rows
    elif opts.split:
        ratios = tdata.parse_split(opts.split)
        parts = tdata.split_rows(rows, ratios, opts.seed)
        for name, part in parts.items():
            tdata.write_jsonl(out / "data" / f"{name}.jsonl", part)
        train_rows, val_rows = parts["train"], parts["val"]
        info["split"] = {"ratios": opts.split, "seed": opts.seed, **{k: len(v) for k, v in parts.items()},
                         "files": {k: f"data/{k}.jsonl" for k in parts}}
    else:
        train_rows, val_rows = rows, []
    info["rows"] = {"train": len(train_rows), "val": len(val_rows)}
    return (tdata.to_sft_examples(train_rows, fmt, fmt_obj), tdata.to_sft_examples(val_rows, fmt, fmt_obj), info)


def build_sft_trainer(opts: SFTOptions, progress: Callable | None = None):
    """The configured SFTTrainer (not yet trained) plus what the manifest needs."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from harness.models.prompts import get_format

    if opts.method not in ("lora", "qlora", "full"):
        raise HarnessError(f"--method {opts.method!r}: choose lora, qlora or full")
    common.report_to(opts.report_to)  # an unknown or missing tracker fails before the model loads
    out = Path(opts.output)
    out.mkdir(parents=True, exist_ok=True)
    base_path = common.resolve_base(opts.model)
    tok = common.load_tokenizer(base_path)
    fmt_name = opts.prompt_format or ("chat" if tok.chat_template else "alpaca")
    fmt_obj = get_format(fmt_name, tok)
    train_ex, val_ex, data_info = _prepare_data(opts, fmt_obj, out)
    model = common.load_causal_lm(base_path, qlora=opts.method == "qlora", trust_remote_code=opts.trust_remote_code)
    has_val = bool(val_ex)
    args = SFTConfig(
        completion_only_loss=not opts.train_on_prompt,
        optim="paged_adamw_8bit" if opts.method == "qlora" else "adamw_torch",
        **common.trainer_args(opts, out, has_val),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_ex),
        eval_dataset=Dataset.from_list(val_ex) if has_val else None,
        processing_class=tok,
        peft_config=None if opts.method == "full" else opts.lora.peft_config(),
        callbacks=[common.LossLog.callback(opts.early_stopping_patience, progress)],
    )
    common.quiet_trainer(trainer)
    return trainer, {"base_path": base_path, "data": data_info, "prompt_format": fmt_obj}


def train_sft(opts: SFTOptions | None = None, progress: Callable | None = None, **kwargs: Any) -> Path:
    """Train and save the checkpoint (adapter, or the full model for method=full)."""
    opts = opts or SFTOptions(**kwargs)
    started = time.time()
    trainer, info = build_sft_trainer(opts, progress)
    trainer.train()
    out = Path(opts.output)
    hyper = {k: v for k, v in asdict(opts).items() if k not in ("model", "data", "output", "val_data")}
    common.save_checkpoint(
        trainer, out, kind="sft",
        base={"ref": common.portable_base_ref(opts.model), "sha256": model_fingerprint(info["base_path"])},
        data=info["data"], hyperparameters=hyper, prompt_format=info["prompt_format"], started=started,
        fingerprint_folder=info["base_path"])
    if opts.method != "full":
        common.set_adapter_base(out, common.portable_base_ref(opts.model))
    return out
