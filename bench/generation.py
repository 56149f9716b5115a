"""Engine batching vs the one-prompt-at-a-time notebook loop: generation and perplexity.

On one model and one set of prompts (the chat-template renderings of the first N rows of
harness/demo/data/test.jsonl, English and Korean), times

- generation: the notebook loop (per prompt ``tokenizer(prompt, return_tensors="pt")``,
  ``model.generate(**inputs, max_new_tokens=..., do_sample=False)``, decode the new tokens up
  to EOS) against ``Engine.generate`` (left-padded batches, greedy), and compares the texts
  (the loop's decoded new text vs ``Generation.raw``);
- perplexity: a per-sample loop of ``model(input_ids, labels=labels)`` with the prompt's labels
  set to -100 (response-only NLL = loss x response tokens) against ``Engine.token_nll``
  (right-padded batches), and compares the NLLs (relative tolerance, default 1e-4).

Both sides share one loaded model, run in this process after an untimed warm-up, and are
timed end to end (tokenization, forward passes, decoding). Prints a table (method, seconds,
ratio) and how many generations are identical. A batched greedy text that differs from the
loop's is shown; it is accepted only as a floating-point near-tie: at the first new token where
the two differ, the (unbatched) logits of the loop's token and the Engine's token must be
within ``--tie-tol``. Exit status: 0 when the outputs agree (up to such near-ties) and the NLLs
agree, 1 otherwise, 2 when ``--min-speedup`` is given and generation is slower than that.
On a CPU shared with other jobs, ``--threads 1`` gives much steadier timings than torch's
default (OpenMP threads wait on each other when a core is taken away).

    .venv/bin/python bench/generation.py                      # SmolLM2-135M-Instruct, 32 prompts
    .venv/bin/python bench/generation.py --tiny --prompts 8   # a tiny random Llama (seconds)
    .venv/bin/python bench/generation.py --prompts 64 --batch-size 32 --json gen.json
    .venv/bin/python bench/generation.py --threads 1   # a CPU shared with other jobs (steadier)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    rows = []
    with DATA.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) == n:
                break
    if len(rows) < n:
        raise SystemExit(f"{DATA} has only {len(rows)} rows; asked for --prompts {n}")
    return rows


def cut_after_stop(text: str, stops: list[str]) -> str:
    """Text up to the end of the first stop string (the Engine stops generating there)."""
    hits = [(text.find(s), len(s)) for s in stops if s and s in text]
    if not hits:
        return text
    i, n = min(hits)
    return text[: i + n]


# --------------------------------------------------------------------------- the notebook loops


def naive_generate(model, tok, prompts: list[str], max_new_tokens: int, eos_ids: set[int]):
    """Per prompt: tokenize, generate greedily, decode the new tokens up to the first EOS."""
    import torch

    texts, ids = [], []
    for p in prompts:
        inputs = tok(p, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        cut = next((j for j, t in enumerate(new) if t in eos_ids), len(new))
        ids.append((inputs["input_ids"][0].tolist(), new[:cut]))
        texts.append(tok.decode(new[:cut], skip_special_tokens=False))
    return texts, ids


def naive_nll(model, tok, prompts: list[str], targets: list[str]) -> list[tuple[float, int]]:
    """Per sample: ``model(input_ids, labels=labels)`` with prompt labels -100; returns
    (NLL sum in nats, response tokens)."""
    import torch

    out = []
    for p, t in zip(prompts, targets):
        n_prompt = len(tok(p).input_ids)
        input_ids = tok(p + t, return_tensors="pt").input_ids.to(model.device)
        labels = input_ids.clone()
        labels[:, :n_prompt] = -100
        n = int(input_ids.shape[1] - n_prompt)  # labels are shifted inside: every response token is scored
        with torch.inference_mode():
            loss = model(input_ids, labels=labels).loss
        out.append((float(loss) * n, n))
    return out


class RecordGenerate:
    """Wraps ``model.generate`` (an instance attribute, so the Engine's calls go through it) to
    keep each batch's prompts and outputs: the Engine's token ids, for diagnosing differences."""

    def __init__(self, model):
        self.model, self.inner, self.calls = model, model.generate, []

    def __enter__(self):
        self.model.generate = self
        return self

    def __exit__(self, *exc):
        del self.model.generate

    def __call__(self, *a, **kw):
        out = self.inner(*a, **kw)
        self.calls.append((kw["input_ids"], kw["attention_mask"], out))
        return out

    def new_tokens(self, ends: set[int]) -> dict[tuple, list[int]]:
        """{prompt token ids: new token ids up to the first EOS/pad}."""
        res = {}
        for ids, mask, out in self.calls:
            width = ids.shape[1]
            for r in range(ids.shape[0]):
                prompt = tuple(ids[r][mask[r].bool()].tolist())
                new = out[r, width:].tolist()
                res[prompt] = new[: next((j for j, t in enumerate(new) if t in ends), len(new))]
        return res


def divergence(model, tok, prompt_ids: list[int], loop_new: list[int], engine_new: list[int] | None) -> dict:
    """The first new token where the loop and the Engine differ, and the loop's (unbatched) logit
    gap there between its own token and the Engine's: a near-tie when it is tiny."""
    import torch

    if engine_new is None:
        return {"at_token": None, "margin": None, "tokens": None}  # the Engine cut the prompt
    k = next(
        (j for j, (a, b) in enumerate(zip(loop_new, engine_new)) if a != b),
        min(len(loop_new), len(engine_new)),
    )
    if k == len(loop_new) or k == len(engine_new):  # one stopped (EOS) where the other went on
        return {"at_token": k, "margin": None, "tokens": None}
    ids = torch.tensor([list(prompt_ids) + loop_new[:k]], device=model.device)
    with torch.inference_mode():
        logits = model(ids).logits[0, -1].float()
    a, b = loop_new[k], engine_new[k]
    return {
        "at_token": k,
        "margin": float(logits[a] - logits[b]),
        "tokens": [tok.decode([a]), tok.decode([b])],
    }


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32, help="first N rows of the demo test set")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", default="auto", help="Engine batch size (default: its auto, 16 on CPU)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama instead of SmolLM2-135M")
    ap.add_argument("--model", help="a local model folder (default: zoo smollm2-135m-instruct)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto: float32 on CPU")
    ap.add_argument("--threads", type=int, help="torch CPU threads for both methods (default: torch's own)")
    ap.add_argument(
        "--nll-rtol", type=float, default=1e-4, help="NLLs agree when |a-b| <= rtol * max(|b|, 1 nat)"
    )
    ap.add_argument(
        "--tie-tol",
        type=float,
        default=1e-3,
        help="a differing greedy text is a near-tie when the two tokens' logits differ by less",
    )
    ap.add_argument(
        "--min-speedup", type=float, default=0.0, help="exit 2 when generation is slower than this"
    )
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    if args.batch_size != "auto":
        args.batch_size = int(args.batch_size)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.prompts import get_format
    from harness.models.resolve import resolve_models

    if args.model:
        path = Path(args.model).resolve()
    elif args.tiny:
        from tinymodels import tiny_base

        tmp = tempfile.TemporaryDirectory(prefix="bench-generation-")  # removed when main returns
        path = tiny_base(Path(tmp.name) / "tiny-base")
    else:
        from harness.models.zoo import zoo_path

        path = zoo_path("smollm2-135m-instruct")

    pool = ModelPool(
        resolve_models({"model": ModelSpec(path=str(path))}, "."),
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
    )
    model, tok = pool.model_and_tokenizer("model")
    engine = pool.engine("model")
    fmt = get_format("chat", tok)
    rows = load_rows(args.prompts)
    prompts = [fmt.render(r["instruction"], r.get("input", "")) for r in rows]
    targets = [r["output"] for r in rows]
    langs = {lang: sum(r.get("lang") == lang for r in rows) for lang in sorted({r.get("lang") for r in rows})}
    eos_ids = set(engine._eos_ids())
    stops = list(dict.fromkeys(s for s in fmt.stop_strings if s))
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    print(
        f"model {path}\n{len(prompts)} prompts ({', '.join(f'{k} {v}' for k, v in langs.items())}) | "
        f"max_new_tokens {args.max_new_tokens} | engine batch {engine.batch_size} | {engine.device} {dtype} | "
        f"torch threads {torch.get_num_threads()} | cpus {os.cpu_count()} | "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', '-')} | "
        f"load avg {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    report: dict = {
        "model": str(path),
        "prompts": len(prompts),
        "langs": langs,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": engine.batch_size,
        "device": engine.device,
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_avg_start": os.getloadavg(),
    }

    # untimed warm-up of both paths (first-call set-up, allocator)
    naive_generate(model, tok, prompts[:1], 2, eos_ids)
    engine.generate(prompts[:2], fmt=fmt, max_new_tokens=2)
    naive_nll(model, tok, prompts[:1], targets[:1])
    engine.token_nll(prompts[:2], targets[:2])

    # ---------------------------------------------------------------- generation
    t0 = time.perf_counter()
    loop_texts, loop_ids = naive_generate(model, tok, prompts, args.max_new_tokens, eos_ids)
    t_loop = time.perf_counter() - t0
    print(f"  notebook generate loop done in {t_loop:.1f}s", flush=True)
    with RecordGenerate(model) as rec:
        t0 = time.perf_counter()
        gens = engine.generate(prompts, fmt=fmt, max_new_tokens=args.max_new_tokens)
        t_eng = time.perf_counter() - t0
    engine_ids = rec.new_tokens(eos_ids | {tok.pad_token_id})
    print(f"  Engine.generate done in {t_eng:.1f}s", flush=True)

    same_prompt_ids = sum(engine._encode(p) == ids for p, (ids, _) in zip(prompts, loop_ids))
    diffs = []
    for i, (lt, g) in enumerate(zip(loop_texts, gens)):
        if cut_after_stop(lt, stops) != g.raw:
            d = divergence(model, tok, *loop_ids[i], engine_ids.get(tuple(loop_ids[i][0])))
            d.update(
                index=i,
                id=rows[i].get("id"),
                lang=rows[i].get("lang"),
                loop=lt,
                engine=g.raw,
                near_tie=d["margin"] is not None and abs(d["margin"]) < args.tie_tol,
            )
            diffs.append(d)
    n_same = len(prompts) - len(diffs)
    real_diffs = [d for d in diffs if not d["near_tie"]]
    loop_tokens = sum(len(n) for _, n in loop_ids)
    eng_tokens = sum(g.n_tokens for g in gens)

    # ---------------------------------------------------------------- perplexity
    t0 = time.perf_counter()
    loop_nll = naive_nll(model, tok, prompts, targets)
    t_loop_nll = time.perf_counter() - t0
    t0 = time.perf_counter()
    eng_nll = engine.token_nll(prompts, targets)
    t_eng_nll = time.perf_counter() - t0
    worst_rel, nll_bad = 0.0, []
    for i, ((ln, lk), e) in enumerate(zip(loop_nll, eng_nll)):
        rel = abs(e.nll_sum - ln) / max(abs(ln), 1.0)
        worst_rel = max(worst_rel, rel)
        if rel > args.nll_rtol or lk != e.n_tokens:
            nll_bad.append(
                {"index": i, "loop": ln, "engine": e.nll_sum, "loop_tokens": lk, "engine_tokens": e.n_tokens}
            )
    report["load_avg_end"] = os.getloadavg()

    # ---------------------------------------------------------------- report
    gen_x, nll_x = t_loop / t_eng, t_loop_nll / t_eng_nll
    print(f"\n{'method':<44} {'seconds':>8} {'ratio':>7}")
    print(f"{'generate: notebook loop (1 prompt at a time)':<44} {t_loop:8.2f} {1.0:7.2f}")
    print(
        f"{'generate: Engine.generate (batch ' + str(engine.batch_size) + ')':<44} {t_eng:8.2f} {gen_x:7.2f}x"
    )
    print(f"{'perplexity: notebook loop (model(labels=))':<44} {t_loop_nll:8.2f} {1.0:7.2f}")
    print(
        f"{'perplexity: Engine.token_nll (batch ' + str(engine.batch_size) + ')':<44} "
        f"{t_eng_nll:8.2f} {nll_x:7.2f}x"
    )
    print(
        f"\nnew tokens: loop {loop_tokens}, Engine {eng_tokens} (EOS counted by the Engine) | "
        f"prompt token ids identical: {same_prompt_ids}/{len(prompts)}"
    )
    print(
        f"generations identical: {n_same}/{len(prompts)}"
        + (f" ({len(diffs) - len(real_diffs)} near-ties, {len(real_diffs)} not)" if diffs else "")
    )
    for d in diffs[:3]:
        print(
            f"  row {d['index']} ({d['id']}, {d['lang']}): parts at new token {d['at_token']} "
            f"(loop/engine token {d['tokens']}), loop logit gap {d['margin'] if d['margin'] is None else format(d['margin'], '.2e')} -> "
            f"{'near-tie' if d['near_tie'] else 'NOT a near-tie'}"
        )
        print(f"    loop:   {d['loop']!r}\n    engine: {d['engine']!r}")
    print(
        f"perplexity: NLLs agree on {len(prompts) - len(nll_bad)}/{len(prompts)} (rtol {args.nll_rtol:g}); "
        f"max relative difference {worst_rel:.2e}"
    )
    for b in nll_bad[:3]:
        print(
            f"  row {b['index']}: loop {b['loop']:.6f} ({b['loop_tokens']} tok)  "
            f"engine {b['engine']:.6f} ({b['engine_tokens']} tok)"
        )
    target = "met" if gen_x >= 4 else "MISSED"
    print(
        f"generation speed-up {gen_x:.2f}x (target >= 4x on a 2-core CPU: {target}); "
        f"perplexity speed-up {nll_x:.2f}x"
    )

    report.update(
        generation={
            "loop_s": round(t_loop, 3),
            "engine_s": round(t_eng, 3),
            "speedup": round(gen_x, 3),
            "identical": n_same,
            "near_ties": len(diffs) - len(real_diffs),
            "not_near_ties": len(real_diffs),
            "prompt_ids_identical": same_prompt_ids,
            "loop_new_tokens": loop_tokens,
            "engine_new_tokens": eng_tokens,
            "differences": diffs,
        },
        perplexity={
            "loop_s": round(t_loop_nll, 3),
            "engine_s": round(t_eng_nll, 3),
            "speedup": round(nll_x, 3),
            "agree": len(prompts) - len(nll_bad),
            "max_rel_diff": worst_rel,
            "rtol": args.nll_rtol,
            "disagreements": nll_bad,
        },
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if real_diffs or nll_bad:
        print("\nFAILED: outputs differ beyond floating-point near-ties, or NLLs disagree")
        return 1
    if args.min_speedup and gen_x < args.min_speedup:
        print(f"\nFAILED: generation speed-up {gen_x:.2f}x < --min-speedup {args.min_speedup}")
        return 2
    print("\nOK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
