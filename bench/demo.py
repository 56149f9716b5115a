"""The demo's wall time and peak memory, stage by stage, with and without the scoring budgets.

Runs ``harness run`` (the CLI, each side in a fresh process) on the built-in demo (or a config),
and prints for each side: the wall time, the peak RSS of the process (``ru_maxrss`` of that
child, from ``os.wait4``), and per stage (generate, preference, benchmark, judge, parity,
metrics) the seconds its units took and the process's peak RSS when the stage ended (every unit marker records the high-water mark
so far, so the stage where it jumps is the one that raised it). Both sides run one after the
other on the same machine: the time ratio is measured side by side.

The two sides:
- ``budget``: a scoring forward pass keeps at most 256 MiB of logits and, on a CPU, holds at
  most 2048 padded tokens (the defaults);
- ``no budget``: HARNESS_LOGITS_BUDGET_MIB=0 and HARNESS_TOKENS_PER_PASS=0, one forward pass per
  batch whatever its logits and tokens
  (what harness did before; perplexity of long Korean references made ~0.9 GB of logits).

    .venv/bin/python bench/demo.py                       # the full demo, both sides (~2 x 8 min on 2 cores)
    .venv/bin/python bench/demo.py --limit 4 --judge none
    .venv/bin/python bench/demo.py --sides budget        # one side: the demo's time and peak today
    .venv/bin/python bench/demo.py --json out.json
    .venv/bin/python bench/demo.py --sides budget --against 402ae94   # this checkout vs a commit

``--against REV`` adds a side that runs the same command from a git worktree of REV (same
Python, same machine, one after the other): how a change moved the demo's time and memory.

The judge's verdicts are cached in HARNESS_CACHE: each side gets its own empty cache (the zoo
model is materialized into it once, before the timed run), so both sides ask the judge.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"budget": {}, "no budget": {"HARNESS_LOGITS_BUDGET_MIB": "0", "HARNESS_TOKENS_PER_PASS": "0"}}
STAGES = ("generate", "preference", "benchmark", "judge", "parity", "metrics")


def _stage(unit: str) -> str:
    first = unit.split(" ", 1)[0]
    return first if first in STAGES else "other"


def per_stage(run: Path) -> list[dict]:
    """Seconds and the peak RSS at the end of each stage, from the run's unit markers."""
    rows: dict[str, dict] = {}
    for marker in (run / "units").glob("*.json"):
        info = json.loads(marker.read_text(encoding="utf-8"))
        row = rows.setdefault(_stage(str(info.get("unit", ""))), {"units": 0, "seconds": 0.0, "peak_rss_mib": 0.0})
        row["units"] += 1
        row["seconds"] += float(info.get("seconds") or 0)
        row["peak_rss_mib"] = max(row["peak_rss_mib"], float(info.get("peak_rss_mib") or 0))
    return [{"stage": s, **rows[s]} for s in (*STAGES, "other") if s in rows]


def run_side(name: str, extra_env: dict, args, out: Path, root: Path = ROOT) -> dict:
    cache = out / f"cache-{name.replace(' ', '-')}"
    env = {**os.environ, **extra_env, "HARNESS_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(root)}
    harness = [sys.executable, "-m", "harness.cli"]
    if not args.config:  # the zoo model, materialized before the clock starts
        subprocess.run([*harness, "zoo", "fetch", "smollm2-135m-instruct"], env=env, check=True,
                       stdout=subprocess.DEVNULL, cwd=root)
    cmd = [*harness, "run", "--models", args.models, "-o", str(out / name.replace(" ", "-")), "-q"]
    for flag, value in (("--config", args.config), ("--limit", args.limit), ("--judge", args.judge),
                        ("--benchmarks", args.benchmarks)):
        if value is not None:
            cmd += [flag, str(value)]
    log = out / f"{name.replace(' ', '-')}.log"
    t = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        # cwd: `python -m` puts the working folder first on sys.path, before PYTHONPATH
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True, cwd=root)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    wall = time.perf_counter() - t
    text = log.read_text(encoding="utf-8")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(text[-4000:])
        raise SystemExit(f"{name}: harness run exited {os.waitstatus_to_exitcode(status)}")
    run = Path(next(line.split(": ", 1)[1] for line in text.splitlines()
                    if line.startswith("run directory: ")))
    scores = json.loads((run / "scores.json").read_text(encoding="utf-8"))
    scores.pop("run_id", None)
    return {"side": name, "wall_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "stages": per_stage(run), "scores": scores}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="harness.yaml (default: the built-in demo)")
    ap.add_argument("--models", default="base,sft,dpo")
    ap.add_argument("--limit", type=int, default=None, help="items per task and benchmark (-n)")
    ap.add_argument("--judge", default=None, help="e.g. none")
    ap.add_argument("--benchmarks", default=None, help="e.g. none")
    ap.add_argument("--sides", default="budget,no budget", help="comma-separated: budget, no budget")
    ap.add_argument("--against", default=None, help="also run the demo from this git revision (a worktree)")
    ap.add_argument("--json", default=None, help="write the measurements here")
    args = ap.parse_args(argv)
    if args.config:
        args.config = str(Path(args.config).resolve())  # the sides run in their own folders

    out = Path(tempfile.mkdtemp(prefix="harness-demo-bench-"))
    results = [run_side(name, SIDES[name], args, out) for name in args.sides.split(",")]
    if args.against:
        tree = out / "against"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), args.against], check=True)
        try:
            results.append(run_side(f"at {args.against}", {}, args, out, root=tree))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    first = results[0]
    width = max(12, *(len(r["side"]) + 2 for r in results))
    print(f"{'side':<{width}}{'wall s':>9}{'vs ' + first['side']:>14}{'peak RSS':>12}")
    for r in results:
        peak = f"{r['peak_rss_mib'] / 1024:.2f} GiB" if r["peak_rss_mib"] else "?"
        print(f"{r['side']:<{width}}{r['wall_s']:>9.1f}{r['wall_s'] / first['wall_s']:>13.2f}x{peak:>12}")
    for r in results:
        print(f"\n{r['side']}: stage, units, seconds, peak RSS when the stage ended")
        for s in r["stages"]:
            print(f"  {s['stage']:<11}{s['units']:>4}{s['seconds']:>9.1f} s{s['peak_rss_mib'] / 1024:>9.2f} GiB")
    same = all(r["scores"] == first["scores"] for r in results)
    print(f"\nscores.json identical across sides: {'yes' if same else 'NO (see --json)'}; "
          f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
