"""``harness train dpo``: preference tuning with trl's DPOTrainer and a new LoRA adapter.

From a base model, or from an SFT adapter (the usual recipe): the SFT adapter is merged into
its base in memory, a new LoRA adapter is trained on the merged model (the frozen merged model
is the reference), and the saved adapter is loaded back by ``dpo: {adapter: ..., base: sft}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.train import common
from harness.train import data as tdata
from harness.train.manifest import model_fingerprint, read_manifest


@dataclass
class DPOOptions:
    data: str
    output: str
    model: str | None = None  # base model (zoo:NAME, folder, hub id); default: the SFT adapter's base
    sft_adapter: str | None = None
    val_data: str | None = None
    prompt_format: str | None = None
    lora: common.LoraOptions = field(default_factory=common.LoraOptions)
    beta: float = 0.1
    loss_type: str = "sigmoid"
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 5e-5
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 0
    eval_steps: int = 20
    logging_steps: int = 5
    warmup_ratio: float = 0.05
    early_stopping_patience: int | None = None
    cpu: bool = False
    report_to: str = "none"  # none | wandb | mlflow | tensorboard (comma list): the trainer's own logging


def _sft_base_ref(sft_dir: Path) -> str:
    manifest = read_manifest(sft_dir) or {}
    ref = (manifest.get("base") or {}).get("ref")
    if not ref:
        cfg = json.loads((sft_dir / "adapter_config.json").read_text())
        ref = cfg.get("base_model_name_or_path")
    if not ref:
        raise HarnessError(f"--sft-adapter {sft_dir}: no base recorded in adapter_config.json",
                           fix="Pass --model with the base the SFT adapter was trained on.")
    return ref


def _start_model(opts: DPOOptions):
    """The model DPO starts from: the base, or base + SFT adapter merged."""
    if opts.sft_adapter:
        sft_dir = Path(opts.sft_adapter)
        if not (sft_dir / "adapter_config.json").is_file():
            raise HarnessError(f"--sft-adapter {sft_dir}: no adapter_config.json there",
                               fix="Point at a folder written by `harness train sft`.")
        base_ref = opts.model or _sft_base_ref(sft_dir)
    elif opts.model:
        sft_dir, base_ref = None, opts.model
    else:
        raise HarnessError("harness train dpo needs --model or --sft-adapter")
    base_path = common.resolve_base(base_ref)
    model = common.load_causal_lm(base_path)
    tok_src = str(sft_dir) if sft_dir is not None and (sft_dir / "tokenizer_config.json").is_file() else base_path
    if sft_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(sft_dir)).merge_and_unload()
    return model, common.load_tokenizer(tok_src), base_ref, base_path, sft_dir


def build_dpo_trainer(opts: DPOOptions, progress: Callable | None = None):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from harness.models.prompts import get_format

    common.report_to(opts.report_to)  # an unknown or missing tracker fails before the model loads
    out = Path(opts.output)
    out.mkdir(parents=True, exist_ok=True)
    rows, where = tdata.read_training_rows(opts.data)
    tdata.validate_rows(rows, "preference", where)
    val_rows: list = []
    if opts.val_data:
        val_rows, vwhere = tdata.read_training_rows(opts.val_data)
        tdata.validate_rows(val_rows, "preference", vwhere)
    model, tok, base_ref, base_path, sft_dir = _start_model(opts)
    fmt_name = opts.prompt_format or ((read_manifest(sft_dir) or {}).get("hyperparameters", {}).get("prompt_format")
                                      if sft_dir else None) or ("chat" if tok.chat_template else "alpaca")
    fmt = get_format(fmt_name, tok)
    train_ex = tdata.to_preference_examples(rows, fmt)
    val_ex = tdata.to_preference_examples(val_rows, fmt)
    if opts.loss_type not in ("sigmoid", "ipo", "hinge", "robust", "bco_pair", "sppo_hard", "nca_pair",
                              "aot", "aot_pair", "apo_zero", "apo_down", "exo_pair", "discopop"):
        raise HarnessError(f"--loss-type {opts.loss_type!r} is not a DPO loss trl knows",
                           fix="Use sigmoid (DPO), ipo, hinge, robust, ...")
    args = DPOConfig(
        beta=opts.beta,
        loss_type=[opts.loss_type],
        **common.trainer_args(opts, out, bool(val_ex)),
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_ex),
        eval_dataset=Dataset.from_list(val_ex) if val_ex else None,
        processing_class=tok,
        peft_config=opts.lora.peft_config(),
        callbacks=[common.LossLog.callback(opts.early_stopping_patience, progress)],
    )
    common.quiet_trainer(trainer)
    info = {"base_ref": base_ref, "base_path": base_path, "sft_dir": sft_dir, "prompt_format": fmt,
            "data": {"train": where, "train_sha256": tdata.file_sha256(where) if Path(where).is_file() else None,
                     "val": opts.val_data,
                     "val_sha256": tdata.file_sha256(opts.val_data) if opts.val_data and Path(opts.val_data).is_file()
                     else None,
                     "format": "preference", "rows": {"train": len(rows), "val": len(val_rows)}}}
    return trainer, info


def train_dpo(opts: DPOOptions | None = None, progress: Callable | None = None, **kwargs: Any) -> Path:
    opts = opts or DPOOptions(**kwargs)
    started = time.time()
    trainer, info = build_dpo_trainer(opts, progress)
    trainer.train()
    out = Path(opts.output)
    sft_dir = info["sft_dir"]
    # The adapter sits on the SFT-merged model: name the SFT adapter (relative when it can be) as base.
    base_for_config = (os.path.relpath(Path(sft_dir).resolve(), out.resolve()) if sft_dir is not None
                       else common.portable_base_ref(info["base_ref"]))
    hyper = {k: v for k, v in asdict(opts).items() if k not in ("model", "data", "output", "val_data", "sft_adapter")}
    base = {"ref": common.portable_base_ref(info["base_ref"]), "sha256": model_fingerprint(info["base_path"])}
    if sft_dir is not None:
        base["sft_adapter"] = base_for_config
        base["sft_manifest_finished"] = (read_manifest(sft_dir) or {}).get("finished")
    common.save_checkpoint(trainer, out, kind="dpo", base=base, data=info["data"], hyperparameters=hyper,
                           prompt_format=info["prompt_format"], started=started,
                           fingerprint_folder=sft_dir if sft_dir is not None else info["base_path"])
    common.set_adapter_base(out, base_for_config)
    return out
