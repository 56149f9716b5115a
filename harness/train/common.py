"""What SFT and DPO training share: loading the starting model, LoRA config, precision, logging."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


@dataclass
class LoraOptions:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"  # or a comma list: q_proj,v_proj

    def peft_config(self):
        from peft import LoraConfig

        targets: Any = self.target_modules
        if targets != "all-linear":
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          task_type="CAUSAL_LM")


def resolve_base(ref: str) -> str:
    """A base model reference (zoo:NAME, folder, hub id) -> what from_pretrained takes."""
    from harness.models.zoo import is_zoo_ref, zoo_path

    if is_zoo_ref(ref):
        return str(zoo_path(ref))
    p = Path(ref).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise HarnessError(f"--model {ref}: folder has no config.json",
                               fix="Point at a transformers model folder, a hub id, or zoo:NAME.")
        return str(p.resolve())
    return ref  # a hub id: works online or when cached


def precision(cpu: bool) -> dict[str, Any]:
    """bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    import torch

    if cpu or not torch.cuda.is_available():
        return {"bf16": False, "fp16": False, "use_cpu": True}
    if torch.cuda.is_bf16_supported():
        return {"bf16": True, "fp16": False}
    return {"bf16": False, "fp16": True}


def use_gpu(cpu: bool) -> bool:
    import torch

    return not cpu and torch.cuda.is_available()


def quiet_trainer(trainer) -> None:
    """No log dicts printed to stdout (disable_tqdm adds a printer): the progress bar and the
    manifest's ``log`` show them."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


REPORT_TO = ("none", "wandb", "mlflow", "tensorboard")


def report_to(value: str | None) -> list[str] | str:
    """``--report-to`` -> what TrainingArguments takes: "none", or a list of integrations whose
    package is installed. W&B runs offline unless WANDB_MODE says otherwise or WANDB_API_KEY is set
    (as ``harness run --log wandb``)."""
    import os

    from harness.tracking.targets import require_tracker

    names = [n.strip().lower() for n in (value or "none").split(",") if n.strip()]
    names = [n for n in names if n != "none"]
    for n in names:
        if n not in REPORT_TO:
            raise HarnessError(f"--report-to {n!r}: not a tracker the trainer logs to", where="--report-to",
                               fix="Use none, wandb, mlflow or tensorboard (or a comma list).")
        require_tracker(n, "--report-to")
    if "wandb" in names:
        from harness.tracking.to_wandb import wandb_mode

        os.environ.setdefault("WANDB_MODE", wandb_mode())
    return list(dict.fromkeys(names)) or "none"


def trainer_args(opts: Any, out: Path, has_val: bool) -> dict[str, Any]:
    """The TrainingArguments SFT and DPO share (both option classes name these fields alike)."""
    return dict(
        output_dir=str(Path(out) / "trainer"),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        learning_rate=opts.learning_rate,
        warmup_steps=opts.warmup_ratio,  # < 1 means a fraction of the steps
        lr_scheduler_type="cosine",
        logging_steps=opts.logging_steps,
        eval_strategy="steps" if has_val else "no",
        eval_steps=opts.eval_steps if has_val else None,
        save_strategy="no",
        report_to=report_to(getattr(opts, "report_to", "none")),
        seed=opts.seed,
        max_length=opts.max_length,
        dataloader_num_workers=0,
        disable_tqdm=True,
        gradient_checkpointing=use_gpu(opts.cpu),  # on a CPU memory is not the limit: skip the recompute
        **precision(opts.cpu),
    )


def device_name() -> str:
    import torch

    return f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else \
        f"cpu ({torch.get_num_threads()} threads)"


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def load_causal_lm(path: str, *, qlora: bool = False, trust_remote_code: bool = False):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if qlora:
        if not torch.cuda.is_available():
            raise HarnessError("--method qlora needs a CUDA GPU and bitsandbytes (pip install 'checkpoint-harness[gpu]')",
                               fix="Use --method lora on CPU.")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        kwargs["device_map"] = {"": 0}
    elif torch.cuda.is_available():
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as err:
        raise HarnessError(f"cannot load model '{path}': {str(err).splitlines()[0]}",
                           fix="Give a local folder, zoo:NAME, or a hub id while online.") from None
    if qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def set_adapter_base(adapter_dir: Path, base_ref: str) -> None:
    """Make adapter_config.json name a base that harness resolves (zoo ref or absolute path)."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    data = json.loads(cfg_path.read_text())
    data["base_model_name_or_path"] = base_ref
    cfg_path.write_text(json.dumps(data, indent=2))


def portable_base_ref(ref: str) -> str:
    from harness.models.zoo import is_zoo_ref

    if is_zoo_ref(ref):
        return ref
    p = Path(ref).expanduser()
    return str(p.resolve()) if p.exists() else ref


class LossLog:
    """A TrainerCallback factory collecting log history and doing patience-based early stopping."""

    @staticmethod
    def callback(patience: int | None, progress=None):
        from transformers import TrainerCallback

        class _Cb(TrainerCallback):
            best = float("inf")
            bad = 0

            def on_evaluate(self, args, state, control, metrics=None, **kw):
                loss = (metrics or {}).get("eval_loss")
                if patience and loss is not None:
                    if loss < self.best - 1e-4:
                        self.best, self.bad = loss, 0
                    else:
                        self.bad += 1
                        if self.bad >= patience:
                            control.should_training_stop = True

            def on_step_end(self, args, state, control, **kw):
                if progress is not None:
                    progress(state.global_step, state.max_steps, {})

            def on_log(self, args, state, control, logs=None, **kw):
                if progress is not None:
                    progress(state.global_step, state.max_steps, logs or {})

        return _Cb()


class progress_bar:
    """A rich progress bar fed by the trainers' ``progress(step, max_steps, logs)`` callback.

    ``with progress_bar("SFT") as cb: train_sft(opts, progress=cb)``; quiet gives ``None``.
    """

    def __init__(self, label: str, quiet: bool = False):
        self.label, self.quiet = label, quiet
        self._bar = None
        self._task = None
        self._last: dict[str, float] = {}

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        self._bar.__enter__()
        self._task = self._bar.add_task(self.label, total=None, info="loading")
        return self.update

    def update(self, step: int, max_steps: int, logs: dict[str, Any]) -> None:
        for key in ("loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies"):
            if key in logs:
                self._last[key] = float(logs[key])
        info = "  ".join(f"{k.replace('rewards/accuracies', 'pref-acc')} {v:.3f}" for k, v in self._last.items())
        self._bar.update(self._task, completed=step, total=max_steps or None, info=info)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


def save_checkpoint(trainer, out: Path, *, kind: str, base: dict[str, Any], data: dict[str, Any],
                    hyperparameters: dict[str, Any], prompt_format, started: float,
                    fingerprint_folder: str | Path) -> Path:
    """Save the trained adapter (or full model) and its tokenizer, write ``harness-train.json``
    and remove the trainer's scratch folder. ``fingerprint_folder`` is what the adapter sits on
    (the base, or the SFT adapter under a DPO adapter); the loader checks it."""
    import shutil

    from harness.train.manifest import base_fingerprint, build_manifest, write_manifest

    out = Path(out)
    trainer.model.save_pretrained(out)
    trainer.processing_class.save_pretrained(out)
    manifest = build_manifest(
        kind=kind,
        base=base,
        data=data,
        hyperparameters={**hyperparameters, "prompt_format": prompt_format.name,
                         "template_hash": prompt_format.template_hash},
        log_history=trainer.state.log_history,
        started=started,
        device=device_name(),
        extra={"steps": trainer.state.global_step,
               # what harness.models.resolve compares with the folder it resolves (same hash as fingerprint())
               "base_fingerprint": base_fingerprint(fingerprint_folder)},
    )
    write_manifest(out, manifest)
    shutil.rmtree(out / "trainer", ignore_errors=True)
    return out
