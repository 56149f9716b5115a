"""lm-eval bridge: offline minis from the installed package, parity with plain lm-eval,
adapters really applied, errors, and the scores.json group."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from harness import benchmarks as B
from harness.config import BenchmarkSpec
from harness.errors import HarnessError
from harness.records import MetricValue

HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(scope="session")
def minis_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture(scope="session")
def minis(minis_root):
    return B.build_minis(minis_root)


@pytest.fixture(scope="session")
def tiny(tiny_models):
    """(peft_model with the adapter active, tokenizer, base_dir)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, adapter = tiny_models["base"], tiny_models["lora_a"]
    tok = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    model.eval()
    return model, tok, base


def _read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- minis


def test_minis_are_built_from_the_installed_package(minis, minis_root):
    assert set(minis) == set(B.MINI_NAMES)
    mm, km, hs = minis["mmlu-mini"], minis["kmmlu-mini"], minis["hellaswag-mini"]
    assert 250 <= mm.n <= 300, mm
    assert 200 <= km.n <= 250, km
    assert hs.n == 40
    for info in minis.values():
        assert Path(info.data_file).parent == minis_root / "benchmarks" / info.name
        items = _read_jsonl(info.data_file)
        assert len(items) == info.n
        gold_key = "gold" if info.name == "hellaswag-mini" else "answer"
        keys = set()
        for it in items:
            assert len(it["choices"]) == 4 and all(c.strip() for c in it["choices"])
            assert it[gold_key] in (0, 1, 2, 3)
            keys.add((it.get("question") or it.get("query"), tuple(it["choices"])))
        assert len(keys) == len(items), "duplicates left in"
        # each gold position is used (a parser that always returned A would fail this)
        assert {it[gold_key] for it in items} == {0, 1, 2, 3}
        yaml_text = Path(info.task_yaml).read_text(encoding="utf-8")
        assert f"task: {info.name}" in yaml_text and str(Path(info.data_file).resolve()) in yaml_text
        assert re.fullmatch(r"[0-9a-f]{16}", info.task_hash)

    mmlu = _read_jsonl(mm.data_file)
    assert len({it["subject"] for it in mmlu}) >= 50
    # the leaked CoT sentence is cut from this abstract_algebra question; its answer is (A) 0
    ring = [it for it in mmlu if "characteristic of the ring 2Z" in it["question"]]
    assert ring and ring[0]["question"] == "Find the characteristic of the ring 2Z."
    assert ring[0]["choices"] == ["0", "3", "12", "30"] and ring[0]["answer"] == 0
    assert not any("\\nactorial" in it["question"] or "$S_n$ has $" in it["question"] for it in mmlu)
    assert mm.duplicates == 1 and mm.skipped == {"more than 4 choices": 1}

    kmmlu = _read_jsonl(km.data_file)
    assert all(HANGUL.search(it["question"]) for it in kmmlu[:20])
    assert not any(it["question"].startswith("질문") for it in kmmlu)
    assert "정답：" in Path(km.task_yaml).read_text(encoding="utf-8")

    hsi = _read_jsonl(hs.data_file)
    assert all(not c.startswith(" ") for it in hsi for c in it["choices"])


def test_minis_are_idempotent_and_hash_tracks_data(minis, tmp_path):
    again = B.build_minis(tmp_path)  # another cache location: same hash (path is not hashed)
    assert {k: v.task_hash for k, v in again.items()} == {k: v.task_hash for k, v in minis.items()}
    assert {k: v.n for k, v in again.items()} == {k: v.n for k, v in minis.items()}
    mtime = Path(again["mmlu-mini"].data_file).stat().st_mtime_ns
    B.build_minis(tmp_path, ["mmlu-mini"])
    assert Path(again["mmlu-mini"].data_file).stat().st_mtime_ns == mtime  # not rewritten


def test_mmlu_parser_reads_choices_and_answer_from_the_cot_target():
    prompt = {
        "toy": "The following are multiple choice questions (with answers) about toy.\n\n"
               "Q: What is 2 + 2?\n(A) 3 (B) 4 (C) 5 (D) 22\nA: Let's think step by step. 2 + 2 = 4. "
               "The answer is (B).\n\n"
               "Q: Pick one.\n(A) a (B) b (C) c (D) d (E) e\nA: Let's think step by step. The answer is (E).\n\n"
               "Q: Two lines\nof question.\n(A) x (B) y (C) z (D) w\nA: Let's think step by step. Not (A). "
               "The answer is (D).",
    }
    items, skipped = B.parse_mmlu_cot_prompts(prompt)
    assert items == [
        {"subject": "toy", "question": "What is 2 + 2?", "choices": ["3", "4", "5", "22"], "answer": 1},
        {"subject": "toy", "question": "Two lines\nof question.", "choices": ["x", "y", "z", "w"], "answer": 3},
    ]
    assert skipped == {"more than 4 choices": 1}


# --------------------------------------------------------------------------- running


SPECS = [BenchmarkSpec(name="mmlu-mini", limit=10, batch_size=8),
         BenchmarkSpec(name="hellaswag-mini", limit=10, num_fewshot=1, batch_size=8)]


@pytest.fixture(scope="session")
def adapter_results(tiny, minis_root):
    model, tok, _ = tiny
    return B.run_benchmarks(model, tok, SPECS, "sft", seed=0, minis_root=minis_root)


@pytest.fixture(scope="session")
def base_results(tiny, minis_root):
    model, tok, _ = tiny
    with model.disable_adapter():
        return B.run_benchmarks(model, tok, SPECS, "base", seed=0, minis_root=minis_root)


def test_accuracy_equals_a_direct_lm_eval_run(tiny, minis, adapter_results):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model, tok, _ = tiny
    tm = TaskManager(include_path=[str(Path(minis[s.name].task_yaml).parent) for s in SPECS],
                     include_defaults=False)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=8)
    for spec in SPECS:
        direct = simple_evaluate(model=lm, tasks=[spec.name], num_fewshot=spec.num_fewshot, limit=spec.limit,
                                 task_manager=tm, log_samples=True, random_seed=0, numpy_random_seed=0,
                                 torch_random_seed=0, fewshot_random_seed=0)
        ours = adapter_results[spec.name]
        assert ours.n == spec.limit
        assert ours.metrics["acc"].value == direct["results"][spec.name]["acc,none"]
        assert ours.metrics["acc"].stderr == pytest.approx(direct["results"][spec.name]["acc_stderr,none"])
        want = {s["doc_id"]: s for s in direct["samples"][spec.name]}
        for rec in ours.samples:
            d = want[rec["doc_id"]]
            assert rec["acc"] == d["acc"]
            assert rec["loglikelihoods"] == pytest.approx([r[0] for r in d["filtered_resps"]], abs=1e-5)
            assert rec["pred"] == max(range(4), key=lambda i: rec["loglikelihoods"][i])
            assert rec["acc"] == float(rec["pred"] == rec["gold"])
        if spec.name == "hellaswag-mini":
            assert ours.metrics["acc_norm"].value == direct["results"][spec.name]["acc_norm,none"]
            assert all("acc_norm" in r for r in ours.samples)
        mean = sum(r["acc"] for r in ours.samples) / ours.n
        assert ours.metrics["acc"].value == pytest.approx(mean)
        lo, hi = ours.metrics["acc"].ci
        assert lo <= mean <= hi


def test_the_adapter_is_really_applied(tiny, adapter_results, base_results, minis_root):
    from transformers import AutoModelForCausalLM

    _model, tok, base_dir = tiny
    for name in ("mmlu-mini", "hellaswag-mini"):
        a = [r["loglikelihoods"] for r in adapter_results[name].samples]
        b = [r["loglikelihoods"] for r in base_results[name].samples]
        assert a != b
        diffs = [abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
        assert max(diffs) > 1e-3
    # adapter disabled == the plain base model loaded on its own
    plain = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    spec = [BenchmarkSpec(name="mmlu-mini", limit=4, batch_size=8)]
    got = B.run_benchmarks(plain, tok, spec, "plain", minis_root=minis_root)["mmlu-mini"]
    flat = [x for r in got.samples for x in r["loglikelihoods"]]
    want = [x for r in base_results["mmlu-mini"].samples[:4] for x in r["loglikelihoods"]]
    assert len(flat) == 16 and flat == pytest.approx(want, abs=1e-5)


def test_result_records_for_the_run_directory(adapter_results):
    r = adapter_results["mmlu-mini"]
    assert r.lm_eval_version == B.lm_eval_version() and r.num_fewshot == 0 and r.limit == 10
    rec = r.samples[0]
    assert set(rec) >= {"task", "doc_id", "question", "choices", "loglikelihoods", "pred", "gold", "acc"}
    assert rec["choices"] == ["A", "B", "C", "D"] and len(rec["options"]) == 4
    d = r.to_dict()
    assert "samples" not in d and d["metrics"]["acc"]["n"] == 10
    json.dumps(r.to_dict(with_samples=True))  # serialisable
    back = B.BenchmarkResult.from_dict(d, samples=r.samples)
    assert back.metrics["acc"] == r.metrics["acc"] and back.samples == r.samples


def test_benchmark_group_pairs_models_with_mcnemar(adapter_results, base_results):
    from harness.metrics.stats import mcnemar

    g = B.benchmark_group({"base": base_results["hellaswag-mini"], "sft": adapter_results["hellaswag-mini"]},
                          ["base", "sft"])
    assert g["kind"] == "benchmark"
    assert list(g["models"]) == ["base", "sft"]
    assert set(g["models"]["sft"]) == {"acc", "acc_norm"}
    MetricValue.from_dict(g["models"]["base"]["acc"])
    tests = {t["metric"]: t for t in g["paired"]}
    assert set(tests) == {"acc", "acc_norm"}
    t = tests["acc"]
    assert (t["a"], t["b"], t["test"]) == ("sft", "base", "mcnemar")
    a = [r["acc"] for r in adapter_results["hellaswag-mini"].samples]
    b = [r["acc"] for r in base_results["hellaswag-mini"].samples]
    assert t["diff"] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert t["p_value"] == pytest.approx(mcnemar(a, b)[1])
    assert g["info"]["lm_eval_version"] == B.lm_eval_version()
    assert g["info"]["task_hash"] == adapter_results["hellaswag-mini"].task_hash
    assert g["info"]["n"] == {"base": 10, "sft": 10} and g["info"]["num_fewshot"] == 1


def test_benchmark_group_pairs_only_shared_questions():
    def res(model, accs: dict[int, float]):
        samples = [{"task": "t", "doc_id": i, "acc": v} for i, v in accs.items()]
        mv = MetricValue(value=sum(accs.values()) / len(accs), n=len(accs))
        return B.BenchmarkResult(name="t", model=model, metrics={"acc": mv}, samples=samples, n=len(accs),
                                 num_fewshot=0, limit=None, task_hash="h", lm_eval_version="x")

    g = B.benchmark_group({"a": res("a", {0: 1, 1: 1, 2: 0, 3: 1}), "b": res("b", {1: 0, 2: 0, 3: 1, 9: 1}),
                           "c": res("c", {0: 0, 1: 0, 2: 1, 3: 0})}, ["a", "b", "c"])
    pairs = {(t["a"], t["b"]): t for t in g["paired"]}
    assert set(pairs) == {("b", "a"), ("c", "a"), ("c", "b")}
    assert pairs[("b", "a")]["n"] == 3  # docs 1, 2, 3
    assert pairs[("b", "a")]["diff"] == pytest.approx(1 / 3 - 2 / 3)
    assert pairs[("c", "a")]["n"] == 4


# --------------------------------------------------------------------------- errors


def test_unknown_task_name_is_a_harness_error(tiny, minis_root):
    model, tok, _ = tiny
    with pytest.raises(HarnessError) as e:
        B.run_benchmarks(model, tok, [BenchmarkSpec(name="mmlu-mnii")], "m", minis_root=minis_root)
    msg = str(e.value)
    assert "'mmlu-mnii'" in msg and "Did you mean mmlu-mini" in msg
    assert all(n in msg for n in B.MINI_NAMES) and "lm_eval --tasks list" in msg
    assert "\n" not in msg


def test_a_hub_dataset_offline_is_a_harness_error(tiny, minis_root, tmp_path):
    model, tok, _ = tiny
    (tmp_path / "hubtask.yaml").write_text(
        "task: harness_test_hub_task\ndataset_path: harness-test-org/no-such-dataset\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: '{{q}}'\ndoc_to_choice: ['A', 'B']\ndoc_to_target: 0\n"
        "metric_list:\n  - metric: acc\n", encoding="utf-8")
    with pytest.raises(HarnessError) as e:
        B.run_benchmarks(model, tok, [BenchmarkSpec(name="harness_test_hub_task", limit=2)], "m",
                         task_dirs=[tmp_path], minis_root=minis_root)
    msg = str(e.value)
    assert "harness_test_hub_task" in msg and "offline" in msg and "hub" in msg and "mmlu-mini" in msg


def test_generation_task_samples_keep_the_response():
    s = {"doc_id": 3, "doc": {"question": "1+1?"}, "arguments": [["1+1?\nAnswer:", {"until": ["\n"]}]],
         "resps": [["2 because"]], "filtered_resps": ["2"], "target": "2", "exact_match": 1.0}
    rec = B._sample_record("gen", s)
    assert rec["response"] == "2" and rec["loglikelihoods"] == [] and rec["pred"] is None
    assert rec["choices"] == [] and rec["exact_match"] == 1.0 and rec["question"] == "1+1?"
    assert rec["gold"] == "2"


def test_offline_error_classifier():
    class OfflineModeIsEnabled(Exception):
        pass

    try:
        try:
            raise OfflineModeIsEnabled("no")
        except OfflineModeIsEnabled as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert B._is_offline_error(outer)
    assert not B._is_offline_error(ValueError("shape mismatch in matmul"))
