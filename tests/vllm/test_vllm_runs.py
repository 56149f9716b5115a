"""`harness run --models base,sft,dpo` with `backend: vllm` against the same run with `backend: hf`
(tiny random models, CPU): the same greedy answers, log-likelihoods within TOL, for the base, an
adapter and a stacked adapter; the parity check is in run.json and the report; a benchmark runs
through lm-eval on the vLLM engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import api

pytestmark = pytest.mark.slow

TOL = 1e-4


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import torch
    from peft import PeftModel
    from tinymodels import tiny_base, tiny_lora
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("vllm-run")
    base = tiny_base(root / "base", hidden=128)  # head_dim 32: vLLM's CPU attention needs >= 32
    sft = tiny_lora(base, root / "sft", seed=1, base_name=str(base))
    merged = root / "sft_merged"
    with torch.no_grad():
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), sft).merge_and_unload().save_pretrained(merged)
    AutoTokenizer.from_pretrained(base).save_pretrained(merged)
    tiny_lora(merged, root / "dpo", seed=3, base_name=str(sft))
    rows = [{"instruction": q, "input": "", "output": a} for q, a in [
        ("What is the capital of France?", "The capital of France is Paris."),
        ("Give an antonym of hot.", "The antonym of hot is cold."),
        ("Convert 5 kilometers to meters.", "5 kilometers is 5000 meters."),
        ("대한민국의 수도는?", "대한민국의 수도는 서울입니다."),
        ("Rewrite the sentence in passive voice.", "The dog was chased by the fox.")]]
    (root / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (root / "t.yaml").write_text("name: t\ndata: data.jsonl\nmetrics: [exact_match, perplexity]\n"
                                 "generation: {max_new_tokens: 12}\n", encoding="utf-8")
    return root


def _run(root: Path, backend: str):
    extra = ", vllm: {kv_cache_space_gb: 1, enforce_eager: true}" if backend == "vllm" else ""
    cfg = root / f"{backend}.yaml"
    cfg.write_text(
        "models:\n"
        f"  base: {{path: base, dtype: float32, backend: {backend}{extra}}}\n"
        f"  sft: {{adapter: sft, base: base, backend: {backend}{extra}}}\n"
        f"  dpo: {{adapter: dpo, base: sft, backend: {backend}{extra}}}\n"
        "tasks: [t.yaml]\nbenchmarks: [{name: mmlu-mini, limit: 3}]\n"
        f"output_dir: out-{backend}\nparity: {{items: 3}}\ncoverage: {{min_n: 1}}\n", encoding="utf-8")
    return api.run(cfg, quiet=True)


def test_vllm_run_equals_the_transformers_run(project):
    hf, vl = _run(project, "hf"), _run(project, "vllm")
    for model in ("base", "sft", "dpo"):
        a, b = hf.samples(model, "t"), vl.samples(model, "t")
        assert [s.response for s in a] == [s.response for s in b], model
        for x, y in zip(a, b):
            assert x.metrics["nll_tokens"] == y.metrics["nll_tokens"]
            assert abs(x.metrics["nll"] - y.metrics["nll"]) < TOL, (model, x.id)
        ha = hf.scores()["groups"]["mmlu-mini"]["models"][model]["acc"]["value"]
        va = vl.scores()["groups"]["mmlu-mini"]["models"][model]["acc"]["value"]
        assert ha == va, model
    info = vl.run_info()["models"]
    paths = {m: info[m]["engine"]["path"] for m in ("base", "sft", "dpo")}
    assert paths == {"base": "base", "sft": "lora", "dpo": "lora-combined"}
    for m in ("base", "sft", "dpo"):
        p = info[m]["parity"]
        assert p["ok"] and p["items"] == 3 and p["greedy_agree"] == 3, p
        assert p["logprob_max_abs_diff_per_token"] < TOL
    assert "parity" not in hf.run_info()["models"]["base"]
    report = (vl.path / "report.md").read_text(encoding="utf-8")
    assert "3/3 greedy" in report and "vllm 0.32" in report and "(lora-combined)" in report
