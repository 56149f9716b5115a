"""The benchmark stage's lm-eval model: the Engine LM (now) vs lm-eval's own HFLM (before).

For each model (by default the demo's base / sft / dpo: SmolLM2-135M-Instruct from the offline
zoo and the adapters in harness/demo, with the demo's benchmarks: mmlu-mini and kmmlu-mini,
limit 30, batch size 16), the same benchmarks run

- through ``run_benchmarks(pool.engine(name), ...)``: what the benchmark stage does, and
- through ``HFLM(pretrained=<the same model, adapters active>, tokenizer=...)``: what it did,

each side in a fresh process that loads the models once. Prints the evaluation wall time of
both sides per model, the ratio (target <= 1.0, i.e. the stage is not slower; timings on a busy
machine move by 10-20 %: use --repeat), the peak memory of each process, and checks that every
question's acc / acc_norm is identical and the per-choice log-likelihoods agree to 1e-5.

    .venv/bin/python bench/engine_lm_vs_hflm.py
    .venv/bin/python bench/engine_lm_vs_hflm.py --models base --tasks hellaswag-mini --limit 40
    .venv/bin/python bench/engine_lm_vs_hflm.py --config my.yaml --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --------------------------------------------------------------------------- one side, in its own process


def hflm_benchmarks(pool, name: str, specs, seed: int) -> dict:
    """The benchmark bridge as it was: lm-eval's HFLM on the model object with ``name``'s
    adapters active, one simple_evaluate per group of specs with the same settings."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from harness.benchmarks import MINI_NAMES, build_minis, lm_eval_version
    from harness.benchmarks.bridge import _batch_size, _task_manager
    from harness.benchmarks.results import to_result

    names = [s.name for s in specs]
    minis = build_minis(None, [n for n in names if n in MINI_NAMES])
    tm = _task_manager(names, minis)
    model, tok = pool.model_and_tokenizer(name)
    engine = pool.engine(name)  # only for its device (the batch size "auto" rule)
    groups: dict[tuple, list] = {}
    for s in specs:
        groups.setdefault((s.num_fewshot, s.limit, s.apply_chat_template, _batch_size(s.batch_size, engine)),
                          []).append(s)
    out = {}
    for (fewshot, limit, chat, bs), group in groups.items():
        pool.activate(name)
        res = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tok, batch_size=bs),
                              tasks=[s.name for s in group], num_fewshot=fewshot, limit=limit, log_samples=True,
                              apply_chat_template=chat, task_manager=tm, random_seed=seed, numpy_random_seed=seed,
                              torch_random_seed=seed, fewshot_random_seed=seed, bootstrap_iters=1000,
                              verbosity=None)
        for s in group:
            mini = minis.get(s.name)
            out[s.name] = to_result(res, s, name, mini.task_hash if mini else None, lm_eval_version(), 0.0, seed,
                                    1000)
    return out


def worker(args) -> None:
    import logging

    from harness.benchmarks import run_benchmarks
    from harness.config import BenchmarkSpec, load_config
    from harness.models import ModelPool, resolve_models

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    cfg = load_config(args.config)
    names = args.models.split(",")
    pool = ModelPool(resolve_models({n: s for n, s in cfg.models.items() if not s.responses}, cfg.base_dir))
    if args.tasks:
        specs = [BenchmarkSpec(name=t, limit=args.limit, batch_size=args.batch_size) for t in args.tasks.split(",")]
    else:
        specs = list(cfg.benchmarks)
    out: dict = {"models": {}, "eval_s": {}, "load_s": {}}
    for name in names:
        t0 = time.perf_counter()
        engine = pool.engine(name)  # loads the shared base once
        out["load_s"][name] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        if args.worker == "engine":
            chat = pool.format(name, "chat") if any(s.apply_chat_template for s in specs) else None
            res = run_benchmarks(engine, specs, name, chat_format=chat, seed=cfg.seed)
        else:
            res = hflm_benchmarks(pool, name, specs, cfg.seed)
        out["eval_s"][name] = round(time.perf_counter() - t0, 2)
        out["models"][name] = {
            t: {"metrics": {m: v.to_dict() for m, v in r.metrics.items()},
                "samples": {str(s["doc_id"]): {"acc": s.get("acc"), "acc_norm": s.get("acc_norm"),
                                               "lls": s["loglikelihoods"]} for s in r.samples}}
            for t, r in res.items()}
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    Path(args.out).write_text(json.dumps(out))


# --------------------------------------------------------------------------- driver


def side(args, kind: str, tmp: Path, tag: str) -> dict:
    out = tmp / f"{kind}-{tag}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--out", str(out),
           "--config", args.config, "--models", args.models, "--limit", str(args.limit),
           "--batch-size", str(args.batch_size)] + (["--tasks", args.tasks] if args.tasks else [])
    with open(tmp / f"{kind}-{tag}.log", "w") as log:
        p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{kind} side failed ({p.returncode}); see {tmp / f'{kind}-{tag}.log'}")
    return json.loads(out.read_text())


def compare(a: dict, b: dict) -> tuple[bool, bool, float]:
    """(per-question acc/acc_norm identical, aggregate metrics identical, max |loglik diff|)."""
    same_q, same_m, worst = True, True, 0.0
    for task, ra in a.items():
        rb = b[task]
        same_m &= ra["metrics"] == rb["metrics"]
        for doc, sa in ra["samples"].items():
            sb = rb["samples"][doc]
            same_q &= sa["acc"] == sb["acc"] and sa["acc_norm"] == sb["acc_norm"]
            worst = max(worst, max(abs(x - y) for x, y in zip(sa["lls"], sb["lls"])))
    return same_q, same_m, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "harness" / "demo" / "harness.yaml"),
                    help="a harness.yaml: its models (and benchmarks unless --tasks)")
    ap.add_argument("--models", default="base,sft,dpo")
    ap.add_argument("--tasks", help="benchmarks to run instead of the config's (with --limit, --batch-size)")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1, help="run both sides this many times (HFLM first)")
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--worker", choices=["engine", "hflm"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-lm-"))
    print(f"config {args.config} | models {args.models} | "
          f"{args.tasks or 'benchmarks of the config'} | logs in {tmp}", flush=True)
    names = args.models.split(",")
    times: dict[str, dict[str, list[float]]] = {k: {n: [] for n in names} for k in ("hflm", "engine")}
    peaks: dict[str, list[float]] = {"hflm": [], "engine": []}
    ok = True
    report: dict = {"models": names, "runs": []}
    for i in range(args.repeat):
        h = side(args, "hflm", tmp, str(i))
        e = side(args, "engine", tmp, str(i))
        for kind, r in (("hflm", h), ("engine", e)):
            peaks[kind].append(r["peak_rss_gb"])
            for n in names:
                times[kind][n].append(r["eval_s"][n])
        for n in names:
            same_q, same_m, worst = compare(e["models"][n], h["models"][n])
            ok &= same_q and same_m and worst <= 1e-5
            accs = ", ".join(f"{t} {v['metrics']['acc']['value']:.4f}" for t, v in e["models"][n].items())
            print(f"  run {i + 1} {n:5s} eval: Engine LM {e['eval_s'][n]:6.1f}s  HFLM {h['eval_s'][n]:6.1f}s  | "
                  f"{accs} | per-question acc identical {same_q}, metrics identical {same_m}, "
                  f"max |loglik diff| {worst:.1e}", flush=True)
            report["runs"].append({"run": i + 1, "model": n, "engine_s": e["eval_s"][n], "hflm_s": h["eval_s"][n],
                                   "identical_acc": same_q, "identical_metrics": same_m, "max_ll_diff": worst})
    total = {k: sum(min(v) for v in times[k].values()) for k in times}  # best of the repeats, per model
    ratio = total["engine"] / total["hflm"]
    print(f"\nevaluation time (best of {args.repeat}, all models): Engine LM {total['engine']:.1f}s  "
          f"HFLM {total['hflm']:.1f}s  ratio {ratio:.2f} (target <= 1.0)")
    print(f"peak memory per process: Engine LM {max(peaks['engine']):.2f} GiB  HFLM {max(peaks['hflm']):.2f} GiB")
    report.update({"engine_s": round(total["engine"], 2), "hflm_s": round(total["hflm"], 2), "ratio": round(ratio, 3),
                   "peak_rss_gb": {k: max(v) for k, v in peaks.items()}, "identical": ok})
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print("\nOK" if ok else "\nNUMBERS DIFFER (see above)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
