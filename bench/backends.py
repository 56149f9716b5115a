"""The transformers engine vs the vLLM engine on the same prompts: agreement and speed.

On one model (default: the zoo SmolLM2-135M-Instruct when installed, else a tiny random Llama)
and the chat-template renderings of the first N rows of harness/demo/data/test.jsonl, runs

- greedy generation through ``HFEngine.generate`` and ``VLLMEngine.generate`` (the same token
  ids in, the same post-processing out): how many texts are identical, and where the first
  differing one departs;
- response log-likelihoods through both engines' ``token_nll`` (the references given the
  prompts): the largest |difference| of a summed NLL and of a per-token mean;

and prints the seconds of each side by side with the ratio transformers / vLLM. vLLM's engine
start (and the model load of the transformers side) is timed separately and not in the ratio;
both sides get an untimed warm-up first. Run it in .venv-vllm (``make install-vllm``):

    .venv-vllm/bin/python bench/backends.py                        # SmolLM2-135M, 32 x 48
    .venv-vllm/bin/python bench/backends.py --tiny --prompts 8     # a tiny random Llama
    .venv-vllm/bin/python bench/backends.py --prompts 256 --new-tokens 128 --dtype bfloat16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
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

DATA = ROOT / "harness" / "demo" / "data" / "test.jsonl"


def load_rows(n: int) -> list[dict]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [rows[i % len(rows)] for i in range(n)]  # repeat the test set when more are asked for


def pick_model(args, tmp: str) -> Path:
    if args.model:
        return Path(args.model).resolve()
    if not args.tiny:
        try:
            from harness.models.zoo import zoo_path

            return Path(zoo_path("smollm2-135m-instruct"))
        except Exception as err:  # noqa: BLE001 (no zoo package: fall back to a tiny model)
            print(f"zoo SmolLM2 not available ({str(err).splitlines()[0]}): using a tiny random Llama")
    from tinymodels import tiny_base

    return tiny_base(Path(tmp) / "tiny-base", hidden=128)   # head_dim 32: vLLM's CPU attention minimum


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a local model folder (default: zoo smollm2-135m-instruct)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama")
    ap.add_argument("--prompts", type=int, default=32, help="first N rows of the demo test set")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--dtype", default="float32", help="both engines (default float32: equal numbers on CPU)")
    ap.add_argument("--vllm", default='{"kv_cache_space_gb": 2}',
                    help='the vllm: options as JSON (e.g. \'{"enforce_eager": true}\')')
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()

    import torch

    from harness.backends.vllm import close_vllm_group, open_vllm_group
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.prompts import get_format
    from harness.models.resolve import resolve_models

    tmp = tempfile.TemporaryDirectory(prefix="bench-backends-")
    path = pick_model(args, tmp.name)
    (pool, load_s) = timed(lambda: ModelPool(resolve_models({"m": ModelSpec(path=str(path))}, "."),
                                             device="cpu" if not torch.cuda.is_available() else "auto",
                                             dtype=args.dtype))
    hf, hf_load = timed(lambda: pool.engine("m"))
    tok = pool.tokenizer("m")
    fmt = get_format("chat" if getattr(tok, "chat_template", None) else "alpaca", tok)
    rows = load_rows(args.prompts)
    prompts = [fmt.render(r["instruction"], r.get("input", "")) for r in rows]
    targets = [r["output"] for r in rows]
    engines, vllm_start = timed(lambda: open_vllm_group(
        pool.resolved["m"].root, {"m": []}, tok, dtype=args.dtype, options=json.loads(args.vllm),
        cache_dir=Path(tmp.name) / "cache"))
    vl = engines["m"]
    print(f"model {path} | {len(prompts)} prompts x {args.new_tokens} new tokens | {args.dtype} | "
          f"{hf.device} | torch threads {torch.get_num_threads()} | cpus {os.cpu_count()} | "
          f"load avg {os.getloadavg()[0]:.2f}\n"
          f"start: transformers load {load_s + hf_load:.1f} s, vLLM engine {vllm_start:.1f} s "
          f"({vl.info.version}; not in the ratios below)", flush=True)

    for e in (hf, vl):   # untimed warm-up
        e.generate(prompts[:2], fmt=fmt, max_new_tokens=2)
        e.token_nll(prompts[:2], targets[:2])
    g_hf, t_gen_hf = timed(lambda: hf.generate(prompts, fmt=fmt, max_new_tokens=args.new_tokens))
    g_vl, t_gen_vl = timed(lambda: vl.generate(prompts, fmt=fmt, max_new_tokens=args.new_tokens))
    n_hf, t_nll_hf = timed(lambda: hf.token_nll(prompts, targets))
    n_vl, t_nll_vl = timed(lambda: vl.token_nll(prompts, targets))
    close_vllm_group(engines)

    same = sum(a.raw == b.raw for a, b in zip(g_hf, g_vl))
    first_diff = next(({"item": i, "transformers": a.raw, "vllm": b.raw}
                       for i, (a, b) in enumerate(zip(g_hf, g_vl)) if a.raw != b.raw), None)
    d_sum = max(abs(a.nll_sum - b.nll_sum) for a, b in zip(n_hf, n_vl))
    d_mean = max(abs(a.mean - b.mean) for a, b in zip(n_hf, n_vl) if a.n_tokens)
    new_tokens = sum(g.n_tokens for g in g_vl)
    print(f"\n{'':14}{'transformers':>14}{'vLLM':>10}{'ratio':>8}")
    print(f"{'generate s':14}{t_gen_hf:>14.2f}{t_gen_vl:>10.2f}{t_gen_hf / t_gen_vl:>7.2f}x")
    print(f"{'token_nll s':14}{t_nll_hf:>14.2f}{t_nll_vl:>10.2f}{t_nll_hf / t_nll_vl:>7.2f}x")
    print(f"\ngreedy texts identical: {same}/{len(prompts)}  ({new_tokens} new tokens from vLLM)")
    print(f"token_nll max |diff|: summed {d_sum:.2e} nats, per-token mean {d_mean:.2e} nats")
    if first_diff:
        print(f"first difference (item {first_diff['item']}):\n  transformers {first_diff['transformers']!r}\n"
              f"  vLLM         {first_diff['vllm']!r}")
    print(f"vLLM path: {vl.info.details['path']}; workarounds: {'; '.join(vl.info.details['workarounds']) or '-'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": str(path), "prompts": len(prompts), "new_tokens": args.new_tokens, "dtype": args.dtype,
            "vllm": vl.info.to_dict(), "start_s": {"transformers": load_s + hf_load, "vllm": vllm_start},
            "generate_s": {"transformers": t_gen_hf, "vllm": t_gen_vl},
            "token_nll_s": {"transformers": t_nll_hf, "vllm": t_nll_vl},
            "greedy_identical": same, "first_difference": first_diff,
            "nll_max_abs_diff": {"sum": d_sum, "mean": d_mean}}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
