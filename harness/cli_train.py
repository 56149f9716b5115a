"""``harness train sft`` / ``harness train dpo``: thin wrappers over ``harness.train`` (registered on
the app by ``harness.cli``). Defaults mirror SFTOptions / DPOOptions (a test checks it)."""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli_errors import user_errors

train_app = typer.Typer(help="Train the checkpoints harness grades (trl + peft).", no_args_is_help=True)


def _lora_opts(r: int, alpha: int, dropout: float, targets: str):
    from harness.train.common import LoraOptions

    return LoraOptions(r=r, alpha=alpha, dropout=dropout, target_modules=targets)


def _print_trained(out: Path, kind: str) -> None:
    from harness.train.manifest import MANIFEST, read_manifest

    man = read_manifest(out) or {}
    losses = [e for e in man.get("log", []) if "eval_loss" in e] or [e for e in man.get("log", []) if "loss" in e]
    last = losses[-1] if losses else {}
    loss_txt = ", ".join(f"{k} {last[k]:.4f}" for k in ("loss", "eval_loss") if k in last)
    typer.echo(f"{kind} checkpoint: {out}")
    typer.echo(f"manifest: {out / MANIFEST} ({man.get('steps', '?')} steps, {man.get('wall_time_s', '?')} s"
               f"{', ' + loss_txt if loss_txt else ''})")
    split = (man.get("data") or {}).get("split")
    if split:
        typer.echo(f"split files: {out / 'data'} (train {split['train']}, val {split['val']}, test {split['test']})")


_H_LORA_R = "LoRA rank."
_H_LORA_ALPHA = "LoRA alpha (scale = alpha / r)."
_H_LORA_DROPOUT = "LoRA dropout."
_H_LORA_TARGETS = "Modules that get LoRA: all-linear, or a comma list such as q_proj,v_proj."
_H_REPORT_TO = ("Where the trainer logs loss curves: none, wandb (offline unless WANDB_MODE / WANDB_API_KEY), "
                "mlflow (MLFLOW_TRACKING_URI, default ./mlruns), tensorboard, or a comma list.")


@train_app.command("sft")
@user_errors
def train_sft_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Base model: zoo:NAME, a local folder or a hub id."),
    data: str = typer.Option(..., "--data", "-d",
                             help="Training data: .jsonl/.json/.parquet/.csv (Alpaca instruction/input/output, "
                                  "chat 'messages', or prompt/completion) or hf:org/name[:split]."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the adapter (or full model) + manifest."),
    val_data: str | None = typer.Option(None, "--val-data",
                                           help="Validation file; when given, --split is not used.",
                                           show_default="none: split --data"),
    method: str = typer.Option("lora", "--method", help="lora, qlora (4-bit base, CUDA only) or full fine-tuning.",
                               show_default=True),
    prompt_format: str | None = typer.Option(None, "--prompt-format",
                                                help="How Alpaca rows become prompts: chat, alpaca, alpaca-ko, "
                                                     "chatml, ..., a Jinja string or a .jinja file.",
                                                show_default="chat if the tokenizer has a chat template, else alpaca"),
    lora_r: int = typer.Option(16, "--lora-r", help=_H_LORA_R, show_default=True),
    lora_alpha: int = typer.Option(32, "--lora-alpha", help=_H_LORA_ALPHA, show_default=True),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", help=_H_LORA_DROPOUT, show_default=True),
    lora_target_modules: str = typer.Option("all-linear", "--lora-target-modules", help=_H_LORA_TARGETS,
                                            show_default=True),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the training data.", show_default=True),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after this many optimizer steps (-1: use --epochs).",
                                  show_default=True),
    learning_rate: float = typer.Option(2e-4, "--learning-rate", "--lr", help="Peak learning rate (cosine decay).",
                                        show_default=True),
    batch_size: int = typer.Option(8, "--batch-size", help="Rows per device step.", show_default=True),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Gradient accumulation steps.", show_default=True),
    max_length: int = typer.Option(256, "--max-length", help="Truncate prompt+response to this many tokens.",
                                   show_default=True),
    split: str = typer.Option("85/5/10", "--split",
                              help="train/val/test percentages when only --data is given; the parts are written "
                                   "to OUTPUT/data/. 'none' trains on all rows without validation.",
                              show_default=True),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, the LoRA init and shuffling.", show_default=True),
    train_on_prompt: bool = typer.Option(False, "--train-on-prompt/--no-train-on-prompt",
                                         help="Also compute the loss on prompt tokens.",
                                         show_default="off: loss on the response only"),
    eval_steps: int = typer.Option(20, "--eval-steps", help="Evaluate on the validation rows every N steps.",
                                   show_default=True),
    logging_steps: int = typer.Option(5, "--logging-steps", help="Log the training loss every N steps.",
                                      show_default=True),
    early_stopping_patience: int | None = typer.Option(
        None, "--early-stopping-patience",
        help="Stop after N evaluations without a lower eval loss.", show_default="off"),
    warmup_ratio: float = typer.Option(0.05, "--warmup-ratio", help="Fraction of the steps spent warming up.",
                                       show_default=True),
    cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU even when a GPU is visible.", show_default="off"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code",
                                           help="Allow model code from the hub (only for models you trust).",
                                           show_default="off"),
    report_to: str = typer.Option("none", "--report-to", help=_H_REPORT_TO, show_default=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.", show_default="off"),
) -> None:
    """Supervised fine-tuning (LoRA, QLoRA or full) with loss on the response tokens only."""
    from harness.train.common import progress_bar
    from harness.train.sft import SFTOptions, train_sft

    opts = SFTOptions(model=model, data=data, output=str(output), val_data=val_data, method=method,
                      prompt_format=prompt_format, lora=_lora_opts(lora_r, lora_alpha, lora_dropout,
                                                                  lora_target_modules),
                      epochs=epochs, max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
                      grad_accum=grad_accum, max_length=max_length,
                      split=None if split.lower() in ("none", "no", "") else split, seed=seed,
                      train_on_prompt=train_on_prompt, eval_steps=eval_steps, logging_steps=logging_steps,
                      early_stopping_patience=early_stopping_patience, warmup_ratio=warmup_ratio, cpu=cpu,
                      trust_remote_code=trust_remote_code, report_to=report_to)
    with progress_bar("SFT", quiet) as cb:
        out = train_sft(opts, progress=cb)
    _print_trained(Path(out), "SFT")


@train_app.command("dpo")
@user_errors
def train_dpo_cmd(
    data: str = typer.Option(..., "--data", "-d",
                             help="Preference data: rows with prompt (or instruction [+ input]), chosen, rejected."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the DPO adapter + manifest."),
    sft_adapter: Path | None = typer.Option(None, "--sft-adapter",
                                               help="Start from this SFT adapter (merged into its base); the new "
                                                    "adapter names it as its base.",
                                               show_default="none: start from --model"),
    model: str | None = typer.Option(None, "--model", "-m",
                                        help="Base model (zoo:NAME, folder, hub id).",
                                        show_default="the SFT adapter's base"),
    val_data: str | None = typer.Option(None, "--val-data", help="Validation preference file.",
                                           show_default="none: no evaluation during training"),
    prompt_format: str | None = typer.Option(None, "--prompt-format",
                                                help="How plain-text prompts are rendered.",
                                                show_default="the SFT adapter's format, else chat or alpaca"),
    lora_r: int = typer.Option(16, "--lora-r", help=_H_LORA_R, show_default=True),
    lora_alpha: int = typer.Option(32, "--lora-alpha", help=_H_LORA_ALPHA, show_default=True),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", help=_H_LORA_DROPOUT, show_default=True),
    lora_target_modules: str = typer.Option("all-linear", "--lora-target-modules", help=_H_LORA_TARGETS,
                                            show_default=True),
    beta: float = typer.Option(0.1, "--beta", help="DPO beta: how far the policy may move from the reference.",
                               show_default=True),
    loss_type: str = typer.Option("sigmoid", "--loss-type",
                                  help="trl loss: sigmoid (DPO), ipo, hinge, robust, bco_pair, apo_zero, ...",
                                  show_default=True),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the preference data.", show_default=True),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after this many optimizer steps (-1: use --epochs).",
                                  show_default=True),
    learning_rate: float = typer.Option(5e-5, "--learning-rate", "--lr", help="Peak learning rate (cosine decay).",
                                        show_default=True),
    batch_size: int = typer.Option(4, "--batch-size", help="Preference pairs per device step.", show_default=True),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Gradient accumulation steps.", show_default=True),
    max_length: int = typer.Option(256, "--max-length", help="Truncate prompt+response to this many tokens.",
                                   show_default=True),
    seed: int = typer.Option(0, "--seed", help="Seed for the LoRA init and shuffling.", show_default=True),
    eval_steps: int = typer.Option(20, "--eval-steps", help="Evaluate on the validation pairs every N steps.",
                                   show_default=True),
    logging_steps: int = typer.Option(5, "--logging-steps", help="Log the training loss every N steps.",
                                      show_default=True),
    warmup_ratio: float = typer.Option(0.05, "--warmup-ratio", help="Fraction of the steps spent warming up.",
                                       show_default=True),
    early_stopping_patience: int | None = typer.Option(
        None, "--early-stopping-patience",
        help="Stop after N evaluations without a lower eval loss.", show_default="off"),
    cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU even when a GPU is visible.", show_default="off"),
    report_to: str = typer.Option("none", "--report-to", help=_H_REPORT_TO, show_default=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.", show_default="off"),
) -> None:
    """Preference tuning (DPO) of a new LoRA adapter, usually on top of an SFT adapter."""
    from harness.train.common import progress_bar
    from harness.train.dpo import DPOOptions, train_dpo

    opts = DPOOptions(data=data, output=str(output), model=model,
                      sft_adapter=str(sft_adapter) if sft_adapter else None, val_data=val_data,
                      prompt_format=prompt_format,
                      lora=_lora_opts(lora_r, lora_alpha, lora_dropout, lora_target_modules), beta=beta,
                      loss_type=loss_type, epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
                      batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, seed=seed,
                      eval_steps=eval_steps, logging_steps=logging_steps, warmup_ratio=warmup_ratio,
                      early_stopping_patience=early_stopping_patience, cpu=cpu, report_to=report_to)
    with progress_bar("DPO", quiet) as cb:
        out = train_dpo(opts, progress=cb)
    _print_trained(Path(out), "DPO")
