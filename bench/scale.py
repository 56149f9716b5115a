"""The same workload plain, on 1 Ray worker and on 2: wall time side by side, scores compared.

Runs ``harness run`` (the notebook API) three times on one config: in this process with the same
shards (``cluster.engine: local``), then ``--workers 1`` and ``--workers 2`` on a local Ray
cluster (started once, reused, its start-up time printed apart). Prints each wall time, the
ratio to the 1-worker run (the ideal for 2 workers is 0.5x) and whether every scores.json is
identical to the plain run's. Exit status 1 when one differs.

    .venv/bin/python bench/scale.py                                  # the demo, 8 items, no benchmarks/judge
    .venv/bin/python bench/scale.py --limit 32 --shard-size 8
    .venv/bin/python bench/scale.py --config my/harness.yaml --benchmarks mmlu-mini --judge none
    .venv/bin/python bench/scale.py --threads 1                      # torch on one thread everywhere

What limits the ratio: the workers share the machine's cores (on a CPU every worker uses the
driver's torch thread count, so that its numbers equal a plain run's: 2 workers on 2 cores with
the default 2 threads run 4 threads; ``--threads 1`` sets the driver's, and so the workers'),
each worker starts (imports, about 8 s on a CPU) and loads its models once, and the last shards
of a stage leave a worker idle. On GPUs (one per worker) none of this applies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _scores(run: Path) -> dict:
    data = json.loads((run / "scores.json").read_text(encoding="utf-8"))
    data.pop("run_id", None)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="harness.yaml (default: the built-in demo)")
    ap.add_argument("--limit", type=int, default=8, help="items per task (-n)")
    ap.add_argument("--shard-size", type=int, default=4)
    ap.add_argument("--benchmarks", default="none", help="comma-separated, or none")
    ap.add_argument("--judge", default="none")
    ap.add_argument("--models", default=None, help="comma-separated (default: all)")
    ap.add_argument("--workers", default="1,2", help="worker counts to time")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of every run (default: torch's)")
    args = ap.parse_args(argv)

    import ray
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from harness import api

    cfg = api.load_config(args.config)
    data = cfg.model_dump(mode="json", exclude={"base_dir"})
    data["cluster"] = {**(data.get("cluster") or {}), "engine": "local", "shard_size": args.shard_size}
    from harness.config import config_from_dict

    cfg = config_from_dict(data, base_dir=cfg.base_dir)
    out = Path(tempfile.mkdtemp(prefix="harness-scale-"))
    common = {"models": args.models.split(",") if args.models else None, "limit": args.limit,
              "benchmarks": args.benchmarks.split(","), "judge": args.judge, "write_report": False,
              "output_dir": out}
    rows = []
    t = time.perf_counter()
    plain = api.run(cfg, **common).path
    rows.append(("plain (this process)", time.perf_counter() - t, True))
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    print(f"ray start: {time.perf_counter() - t:.1f} s (not counted below)")
    for n in [int(w) for w in args.workers.split(",")]:
        t = time.perf_counter()
        run = api.run(cfg, workers=n, **common).path
        rows.append((f"{n} worker{'s' * (n > 1)}", time.perf_counter() - t, _scores(run) == _scores(plain)))
    ray.shutdown()
    one = next((s for name, s, _ in rows if name == "1 worker"), rows[0][1])
    print(f"{'run':<22}{'seconds':>9}{'vs 1 worker':>13}  scores.json == plain")
    for name, secs, same in rows:
        print(f"{name:<22}{secs:>9.1f}{secs / one:>12.2f}x  {'yes' if same else 'NO'}")
    print(f"cores: {os.cpu_count()}; torch threads per run {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f} (other jobs share these cores)")
    shutil.rmtree(out, ignore_errors=True)
    return 0 if all(same for _, _, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
