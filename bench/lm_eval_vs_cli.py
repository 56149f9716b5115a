"""lm-eval benchmarks through harness vs the plain ``lm_eval`` command line (wall time, numbers).

(1) one model: the same tasks through harness (``ModelPool.engine`` + ``run_benchmarks``, the
    benchmark stage's path, one process) and through ``lm_eval --model hf --model_args
    pretrained=PATH --tasks ... --include_path ...``; prints both wall times, the ratio (target
    <= 1.0) and checks that the accuracies are identical.
(2) base + sft + dpo: one harness process (the base is loaded once, adapters switched) against
    three separate ``lm_eval`` runs (``peft=ADAPTER`` in model_args); target: well under 3x one run.

Both sides run as fresh subprocesses (imports, model load and task set-up included), with the
same device, dtype, batch size, seed, fewshot and limit. The model is SmolLM2-135M-Instruct
from the offline zoo (``--tiny``: a tiny random Llama instead); without ``--sft/--dpo``
the adapters are random LoRAs (so numbers differ, speed is what is measured).

    .venv/bin/python bench/lm_eval_vs_cli.py --limit 30
    .venv/bin/python bench/lm_eval_vs_cli.py --tiny --limit 20
    .venv/bin/python bench/lm_eval_vs_cli.py --sft out/sft --dpo out/dpo --limit 100 --json bench.json

bench/engine_lm_vs_hflm.py compares the stage's Engine LM with lm-eval's HFLM on the same loaded models.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_TASKS = "mmlu-mini,hellaswag-mini,kmmlu-mini"


# --------------------------------------------------------------------------- worker (harness side)


def worker(args) -> None:
    """Runs in a fresh process: resolve + load the models once, run every benchmark per model."""
    t0 = time.perf_counter()
    from harness.benchmarks import run_benchmarks
    from harness.config import BenchmarkSpec, ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.resolve import resolve_models

    models = json.loads(args.models)  # {name: {"path": ...} | {"adapter": ..., "base": ...}}
    specs = {n: ModelSpec(**m) for n, m in models.items()}
    pool = ModelPool(resolve_models(specs, "."), device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    bspecs = [BenchmarkSpec(name=t, num_fewshot=args.fewshot, limit=args.limit, batch_size=args.batch_size)
              for t in args.tasks.split(",")]
    out = {"models": {}, "timings": {}}
    for name in models:
        t1 = time.perf_counter()
        engine = pool.engine(name)
        t2 = time.perf_counter()
        res = run_benchmarks(engine, bspecs, name, seed=args.seed)
        out["timings"][name] = {"load_s": round(t2 - t1, 2), "eval_s": round(time.perf_counter() - t2, 2)}
        out["models"][name] = {
            t: {"acc": r.metrics["acc"].value,
                "acc_norm": r.metrics["acc_norm"].value if "acc_norm" in r.metrics else None,
                "n": r.n, "task_hash": r.task_hash,
                "lls": {str(s["doc_id"]): s["loglikelihoods"] for s in r.samples}}
            for t, r in res.items()
        }
    out["timings"]["total_in_process_s"] = round(time.perf_counter() - t0, 2)
    Path(args.worker_out).write_text(json.dumps(out))


# --------------------------------------------------------------------------- driver


def _run(cmd: list[str], log_file: Path) -> float:
    t0 = time.perf_counter()
    with open(log_file, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy(), check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        tail = log_file.read_text(errors="replace")[-3000:]
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{tail}")
    return wall


def harness_run(args, models: dict, tmp: Path, tag: str) -> tuple[float, dict]:
    out = tmp / f"harness-{tag}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--worker-out", str(out),
           "--models", json.dumps(models), "--tasks", args.tasks, "--limit", str(args.limit),
           "--fewshot", str(args.fewshot), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--device", args.device, "--dtype", args.dtype]
    wall = _run(cmd, tmp / f"harness-{tag}.log")
    return wall, json.loads(out.read_text())


def cli_run(args, path: str, peft: str | None, include: str, tmp: Path, tag: str) -> tuple[float, dict]:
    out_dir = tmp / f"cli-{tag}"
    margs = f"pretrained={path},dtype={args.dtype}" + (f",peft={peft}" if peft else "")
    lm_eval = str(Path(sys.executable).parent / "lm_eval")
    cmd = [lm_eval, "--model", "hf", "--model_args", margs, "--tasks", args.tasks, "--include_path", include,
           "--limit", str(args.limit), "--num_fewshot", str(args.fewshot), "--batch_size", str(args.batch_size),
           "--device", args.device, "--seed", str(args.seed), "--output_path", str(out_dir), "--log_samples"]
    wall = _run(cmd, tmp / f"cli-{tag}.log")
    res_file = max(glob.glob(str(out_dir / "**" / "results_*.json"), recursive=True))
    results = json.loads(Path(res_file).read_text())
    tasks = {}
    for t in args.tasks.split(","):
        r = results["results"][t]
        lls = {}
        for sf in glob.glob(str(Path(res_file).parent / f"samples_{t}_*.jsonl")):
            for line in Path(sf).read_text().splitlines():
                s = json.loads(line)
                lls[str(s["doc_id"])] = [float(x[0]) for x in s["filtered_resps"]]
        tasks[t] = {"acc": r.get("acc,none"), "acc_norm": r.get("acc_norm,none"), "lls": lls}
    return wall, tasks


def compare(h: dict, c: dict) -> tuple[bool, float]:
    """(accuracies identical, max |loglikelihood difference|) over tasks."""
    same, worst = True, 0.0
    for t, hv in h.items():
        cv = c[t]
        same &= hv["acc"] == cv["acc"] and hv["acc_norm"] == cv["acc_norm"]
        for doc, lls in hv["lls"].items():
            worst = max(worst, max(abs(a - b) for a, b in zip(lls, cv["lls"][doc])))
    return same, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama instead of SmolLM2-135M")
    ap.add_argument("--model", help="a local model folder (default: zoo smollm2-135m-instruct)")
    ap.add_argument("--sft", help="SFT adapter folder (default: a random LoRA)")
    ap.add_argument("--dpo", help="DPO adapter folder (default: a random LoRA)")
    ap.add_argument("--tasks", default=DEFAULT_TASKS)
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--fewshot", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--skip-three", action="store_true", help="only the one-model comparison")
    ap.add_argument("--skip-one", action="store_true", help="only the base + sft + dpo comparison")
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--models", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    from harness.benchmarks import build_minis
    from harness.models.hf_load import pick_device, pick_dtype

    args.device = pick_device(args.device)
    args.dtype = str(pick_dtype(args.dtype, args.device)).removeprefix("torch.")
    tmp = Path(tempfile.mkdtemp(prefix="bench-lm-eval-vs-cli-"))
    if args.model:
        path = Path(args.model).resolve()
    elif args.tiny:
        from tinymodels import tiny_base

        path = tiny_base(tmp / "tiny-base")
    else:
        from harness.models.zoo import zoo_path

        path = zoo_path("smollm2-135m-instruct")
    adapters = {}
    for name, given, seed in (("sft", args.sft, 1), ("dpo", args.dpo, 2)):
        if given:
            adapters[name] = str(Path(given).resolve())
        elif not args.skip_three:
            from tinymodels import tiny_lora

            adapters[name] = str(tiny_lora(path, tmp / f"random-{name}", seed=seed, base_name=str(path)))
    minis = build_minis()
    include = str(Path(next(iter(minis.values())).task_yaml).parent.parent)
    print(f"model {path} | tasks {args.tasks} | limit {args.limit} | fewshot {args.fewshot} | "
          f"batch {args.batch_size} | {args.device} {args.dtype} | logs in {tmp}", flush=True)
    report: dict = {"model": str(path), "tasks": args.tasks, "limit": args.limit, "device": args.device,
                    "dtype": args.dtype, "batch_size": args.batch_size}

    # (1) one model
    ok = True
    if not args.skip_one:
        h_wall, h = harness_run(args, {"base": {"path": str(path)}}, tmp, "one")
        c_wall, c = cli_run(args, str(path), None, include, tmp, "one")
        same, worst = compare(h["models"]["base"], c)
        ratio = h_wall / c_wall
        print("\n(1) one model")
        for t in args.tasks.split(","):
            print(f"  {t:16s} harness acc {h['models']['base'][t]['acc']:.4f}  lm_eval acc {c[t]['acc']:.4f}"
                  + (f"  acc_norm {h['models']['base'][t]['acc_norm']:.4f} / {c[t]['acc_norm']:.4f}"
                     if c[t]["acc_norm"] is not None else ""))
        print(f"  wall: harness {h_wall:.1f}s  lm_eval CLI {c_wall:.1f}s  ratio {ratio:.2f} (target <= 1.0)")
        print(f"  harness in-process: {h['timings']}")
        print(f"  accuracies identical: {same}; max |loglik diff| {worst:.2e}")
        report["one"] = {"harness_s": round(h_wall, 2), "cli_s": round(c_wall, 2), "ratio": round(ratio, 3),
                         "identical_acc": same, "max_ll_diff": worst, "harness_timings": h["timings"],
                         "acc": {t: {"harness": h["models"]["base"][t]["acc"], "cli": c[t]["acc"]}
                                 for t in args.tasks.split(",")}}
        ok = same and ratio <= 1.0

    # (2) base + sft + dpo
    if not args.skip_three:
        models = {"base": {"path": str(path)}, "sft": {"adapter": adapters["sft"], "base": str(path)},
                  "dpo": {"adapter": adapters["dpo"], "base": str(path)}}
        h3_wall, h3 = harness_run(args, models, tmp, "three")
        cli3, walls = {}, {}
        for name in models:
            walls[name], cli3[name] = cli_run(args, str(path), adapters.get(name), include, tmp, name)
        total = sum(walls.values())
        print("\n(2) base + sft + dpo")
        all_same = True
        for name in models:
            s, w = compare(h3["models"][name], cli3[name])
            all_same &= s
            accs = ", ".join(f"{t} {h3['models'][name][t]['acc']:.3f}/{cli3[name][t]['acc']:.3f}"
                             for t in args.tasks.split(","))
            print(f"  {name:5s} harness/lm_eval acc: {accs}  identical {s}  max |ll diff| {w:.2e}")
        print(f"  wall: harness one process {h3_wall:.1f}s  vs 3 lm_eval runs {total:.1f}s "
              f"({', '.join(f'{k} {v:.1f}s' for k, v in walls.items())})  ratio {h3_wall / total:.2f}")
        print(f"  harness in-process: {h3['timings']}")
        report["three"] = {"harness_s": round(h3_wall, 2), "cli_s": {k: round(v, 2) for k, v in walls.items()},
                           "cli_total_s": round(total, 2), "ratio": round(h3_wall / total, 3),
                           "identical_acc": all_same, "harness_timings": h3["timings"]}
        ok &= all_same and h3_wall < total
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print("\nOK" if ok else "\nTARGETS MISSED (see above)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
