"""lm-eval bridge: offline minis from the installed package, the Engine LM equal to lm-eval's own
HFLM (base, a LoRA adapter, a stacked adapter), adapters really applied, errors, and the
scores.json group."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from harness import benchmarks as B
from harness.benchmarks.bridge import _is_offline_error
from harness.benchmarks.results import sample_record, to_result
from harness.config import BenchmarkSpec, ModelSpec
from harness.engine import NLL, EngineInfo, Generation
from harness.errors import HarnessError
from harness.models.prompts import drop_partial_char
from harness.records import MetricValue

HANGUL = re.compile(r"[\uac00-\ud7a3]")
MODELS = ("base", "sft", "dpo")
SPECS = [BenchmarkSpec(name="mmlu-mini", limit=10, batch_size=8),
         BenchmarkSpec(name="kmmlu-mini", limit=10, batch_size=8),
         BenchmarkSpec(name="hellaswag-mini", limit=10, num_fewshot=1, batch_size=8)]


@pytest.fixture(scope="session")
def minis_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture(scope="session")
def minis(minis_root):
    return B.build_minis(minis_root)


@pytest.fixture(scope="session")
def pool(tiny_models, tmp_path_factory):
    """base, sft (a LoRA adapter on base) and dpo (a LoRA adapter stacked on sft): one loaded base."""
    from harness.models import ModelPool, resolve_models

    t = tiny_models
    specs = {"base": ModelSpec(path=str(t["base"])), "sft": ModelSpec(adapter=str(t["lora_a"]), base="base"),
             "dpo": ModelSpec(adapter=str(t["lora_on_a"]), base="sft")}
    return ModelPool(resolve_models(specs, tmp_path_factory.mktemp("cfg")), device="cpu", dtype="float32")


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


# --------------------------------------------------------------------------- the Engine LM, unit


class _FakeEngine:
    """Records what lm-eval's questions turn into."""

    info = EngineInfo("fake", details={"device": "cpu"})
    max_length = 64

    def __init__(self):
        self.batch_size, self.auto_batch, self.calls = 3, True, []

    def loglikelihood(self, requests, progress=None):
        self.calls.append(("loglikelihood", list(requests), self.batch_size, self.auto_batch))
        return [(-float(len(cont)), len(cont) == 1) for _, cont in requests]

    def rolling_nll(self, texts, max_length=None, stride=None):
        self.calls.append(("rolling_nll", list(texts), max_length, stride))
        return [NLL(float(len(t)), len(t), len(t)) for t in texts]

    def generate(self, prompts, *, fmt=None, max_new_tokens=128, temperature=0.0, top_p=1.0, stop=(), seed=0,
                 progress=None):
        self.calls.append(("generate", list(prompts), fmt, list(stop), max_new_tokens, temperature))
        return [Generation(text="stripped", raw=f" {p}!\nmore", n_tokens=3, truncated=False) for p in prompts]


class _FakeChat:
    name, template, template_hash = "chat", "{{ messages }}", "abc123"

    def render_messages(self, messages, system=None):
        return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"


def _instance(kind: str, *args):
    from lm_eval.api.instance import Instance

    return Instance(request_type=kind, doc={}, arguments=tuple(args), idx=0)


def test_engine_lm_maps_lm_evals_questions_onto_the_engine():
    from harness.benchmarks.engine_lm import EngineLM

    eng = _FakeEngine()
    lm = EngineLM(eng, batch_size=8, name="m")
    got = lm.loglikelihood([_instance("loglikelihood", "Q?", " A"), _instance("loglikelihood", "Q?", " Bb")])
    assert got == [(-2.0, False), (-3.0, False)]
    # the benchmark's batch size, fixed (no out-of-memory halving) during the call, then restored
    assert eng.calls[-1] == ("loglikelihood", [("Q?", " A"), ("Q?", " Bb")], 8, False)
    assert (eng.batch_size, eng.auto_batch) == (3, True)

    assert lm.loglikelihood_rolling([_instance("loglikelihood_rolling", "abcd")]) == [-4.0]
    assert eng.calls[-1] == ("rolling_nll", ["abcd"], 64, 64)  # lm-eval's windows: the whole context

    greedy = {"until": ["\n"], "max_gen_toks": 5, "do_sample": False, "temperature": 0.7}
    reqs = [_instance("generate_until", "p1", greedy), _instance("generate_until", "p2", {"until": "!"}),
            _instance("generate_until", "p3", dict(greedy))]
    assert lm.generate_until(reqs) == [" p1!", " p2", " p3!"]  # cut at the stops, not stripped
    assert eng.calls[-2] == ("generate", ["p1", "p3"], None, ["\n"], 5, 0.0)  # one call per kwargs
    assert eng.calls[-1] == ("generate", ["p2"], None, ["!"], 256, 0.0)  # HFLM's default length

    with pytest.raises(HarnessError, match="chat prompt format"):
        lm.apply_chat_template([{"role": "user", "content": "hi"}])
    chat = EngineLM(eng, chat_format=_FakeChat(), name="m")
    history = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert chat.apply_chat_template(history) == "system:S|user:Q|assistant:"
    # a task's gen_prefix: the last assistant turn is continued
    assert chat.apply_chat_template(history + [{"role": "assistant", "content": "Answer:"}],
                                    add_generation_prompt=False) == "system:S|user:Q|assistant:Answer:"
    assert chat.tokenizer_name == "m-abc123" and chat.chat_template(True) == "{{ messages }}"


def test_generation_settings_read_as_hflm_reads_them():
    from harness.benchmarks.engine_lm import cut_at_stops, generation_settings

    assert generation_settings({"until": "\n\n"}) == (["\n\n"], {"max_new_tokens": 256, "temperature": 0.0})
    assert generation_settings({"max_new_tokens": 7, "temperature": 0.5, "top_p": 0.9}) == (
        [], {"max_new_tokens": 7, "temperature": 0.5, "top_p": 0.9})  # a temperature alone samples
    assert generation_settings({"do_sample": False, "temperature": 0.5})[1]["temperature"] == 0.0
    assert cut_at_stops("a b\nc. d", ["\n", ". "]) == "a b" and cut_at_stops("x", []) == "x"


# --------------------------------------------------------------------------- Engine LM == HFLM


def _hflm_results(pool, name: str, specs, minis) -> dict[str, dict]:
    """What the bridge did before: lm-eval's own HFLM on the model object with ``name``'s
    adapters active, one simple_evaluate per group of specs with the same settings."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=[str(Path(minis[s.name].task_yaml).parent) for s in specs],
                     include_defaults=False)
    model, tok = pool.model_and_tokenizer(name)
    groups: dict[tuple, list[str]] = {}
    for s in specs:
        groups.setdefault((s.num_fewshot, s.limit, s.batch_size, s.apply_chat_template), []).append(s.name)
    out = {}
    for (fewshot, limit, bs, chat), names in groups.items():
        res = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tok, batch_size=bs), tasks=names,
                              num_fewshot=fewshot, limit=limit, task_manager=tm, log_samples=True,
                              apply_chat_template=chat, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                              fewshot_random_seed=0, bootstrap_iters=1000, verbosity=None)
        out.update({n: res for n in names})
    return out


@pytest.fixture(scope="session")
def runs(pool, minis, minis_root):
    """{model: (results through the Engine LM, the same turned into results from HFLM's run)}"""
    out = {}
    for name in MODELS:
        ours = B.run_benchmarks(pool.engine(name), SPECS, name, seed=0, minis_root=minis_root)
        direct = _hflm_results(pool, name, SPECS, minis)
        theirs = {s.name: to_result(direct[s.name], s, name, minis[s.name].task_hash, B.lm_eval_version(), 0.0,
                                    0, 1000) for s in SPECS}
        out[name] = (ours, theirs, direct)
    return out


def _assert_same(ours, theirs) -> None:
    """Equal results: every metric (value, interval, stderr), every per-question record, the
    log-likelihoods to 1e-5."""
    assert ours.n == theirs.n and ours.task_hash == theirs.task_hash
    assert {k: v.to_dict() for k, v in ours.metrics.items()} == {k: v.to_dict() for k, v in theirs.metrics.items()}
    assert len(ours.samples) == len(theirs.samples)
    for a, b in zip(ours.samples, theirs.samples):
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-5)
        assert {k: v for k, v in a.items() if k != "loglikelihoods"} == \
            {k: v for k, v in b.items() if k != "loglikelihoods"}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_engine_lm_equals_hflm(runs, name):
    ours, theirs, direct = runs[name]
    for spec in SPECS:
        r, t = ours[spec.name], theirs[spec.name]
        assert r.n == spec.limit
        _assert_same(r, t)
        entry = direct[spec.name]["results"][spec.name]
        assert r.metrics["acc"].value == entry["acc,none"]
        assert r.metrics["acc"].stderr == pytest.approx(entry["acc_stderr,none"])
        if spec.name == "hellaswag-mini":
            assert r.metrics["acc_norm"].value == entry["acc_norm,none"]
        for rec in r.samples:
            assert rec["pred"] == max(range(4), key=lambda i: rec["loglikelihoods"][i])
            assert rec["acc"] == float(rec["pred"] == rec["gold"])
        lo, hi = r.metrics["acc"].ci
        assert lo <= r.metrics["acc"].value <= hi


@pytest.mark.slow
def test_paired_tests_are_unchanged(runs):
    for spec in SPECS:
        ours = B.benchmark_group({m: runs[m][0][spec.name] for m in MODELS}, list(MODELS))
        theirs = B.benchmark_group({m: runs[m][1][spec.name] for m in MODELS}, list(MODELS))
        assert ours == theirs


def test_answers_of_one_question_share_one_forward_row(pool):
    """As in HFLM: one-token answers to the same context are scored from one row (4x fewer rows
    for MMLU), and the numbers equal scoring each request alone."""
    engine = pool.engine("sft")
    rows, seen = [], []
    hook = engine.model.register_forward_pre_hook(lambda _m, args, kw: rows.append(len(kw["input_ids"])),
                                                  with_kwargs=True)
    try:
        reqs = [(q, f" {c}") for q in ("What is the capital of France?\nAnswer:", "2 + 2 =") for c in "ABCD"]
        got = engine.loglikelihood(reqs + [("2 + 2 =", " 4 or 5")], progress=lambda d, n: seen.append((d, n)))
        assert sum(rows) == 3 and seen[-1] == (9, 9)
        alone = [engine.loglikelihood([r])[0] for r in reqs]
    finally:
        hook.remove()
    assert [lp for lp, _ in got[:8]] == pytest.approx([lp for lp, _ in alone], abs=1e-5)
    assert [g for _, g in got[:8]] == [g for _, g in alone]
    assert len({lp for lp, _ in got[:4]}) == 4  # each answer its own log-probability


@pytest.mark.slow
def test_the_adapters_are_really_applied(runs, tiny_models, minis_root):
    from transformers import AutoModelForCausalLM

    from harness.backends.hf import HFEngine
    from harness.models.hf_load import load_tokenizer

    lls = {m: {n: [r["loglikelihoods"] for r in runs[m][0][n].samples] for n in ("mmlu-mini", "hellaswag-mini")}
           for m in MODELS}
    for a, b in (("sft", "base"), ("dpo", "sft")):
        for n in ("mmlu-mini", "hellaswag-mini"):
            diffs = [abs(x - y) for ra, rb in zip(lls[a][n], lls[b][n]) for x, y in zip(ra, rb)]
            assert max(diffs) > 1e-3, (a, b, n)
    # the base served from the shared model == the plain base model loaded on its own
    plain = AutoModelForCausalLM.from_pretrained(tiny_models["base"]).eval()
    engine = HFEngine(plain, load_tokenizer(str(tiny_models["base"])), "cpu")
    got = B.run_benchmarks(engine, [BenchmarkSpec(name="mmlu-mini", limit=4, batch_size=8)], "plain",
                           minis_root=minis_root)["mmlu-mini"]
    flat = [x for r in got.samples for x in r["loglikelihoods"]]
    assert len(flat) == 16 and flat == pytest.approx([x for r in lls["base"]["mmlu-mini"][:4] for x in r], abs=1e-5)


@pytest.mark.slow
def test_the_benchmark_stage_writes_what_hflm_would_have_scored(tiny_models, pool, minis, tmp_path, monkeypatch):
    """`harness run` with benchmarks only: the stage serves each model through its Engine; the
    run directory's records and the scores.json group equal those made from HFLM's run."""
    import yaml

    from harness import api

    t = tiny_models
    specs = [BenchmarkSpec(name="mmlu-mini", limit=4, batch_size=4),
             BenchmarkSpec(name="hellaswag-mini", limit=4, batch_size=4)]
    cfg = {"models": {"base": {"path": str(t["base"])}, "sft": {"adapter": str(t["lora_a"]), "base": "base"},
                      "dpo": {"adapter": str(t["lora_on_a"]), "base": "sft"}},
           "benchmarks": [s.model_dump(mode="json") for s in specs], "output_dir": "out"}
    (tmp_path / "harness.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    run = api.run(tmp_path / "harness.yaml").path
    scores = json.loads((run / "scores.json").read_text(encoding="utf-8"))
    for spec in specs:
        theirs = {}
        for m in MODELS:
            direct = _hflm_results(pool, m, [spec], minis)[spec.name]
            theirs[m] = to_result(direct, spec, m, minis[spec.name].task_hash, B.lm_eval_version(), 0.0, 0, 1000)
            written = B.BenchmarkResult.from_dict(
                json.loads((run / "benchmarks" / m / f"{spec.name}.summary.json").read_text(encoding="utf-8")),
                samples=_read_jsonl(run / "benchmarks" / m / f"{spec.name}.jsonl"))
            _assert_same(written, theirs[m])
        group = scores["groups"][spec.name]
        want = B.benchmark_group(theirs, list(MODELS), n_resamples=1000)
        assert group["models"] == want["models"] and group["paired"] == want["paired"]


@pytest.mark.slow
def test_chat_template_benchmarks_equal_hflm(pool, minis, minis_root):
    spec = [BenchmarkSpec(name="mmlu-mini", limit=5, batch_size=4, apply_chat_template=True)]
    ours = B.run_benchmarks(pool.engine("sft"), spec, "sft", chat_format=pool.format("sft", "chat"),
                            minis_root=minis_root)["mmlu-mini"]
    direct = _hflm_results(pool, "sft", spec, minis)["mmlu-mini"]
    _assert_same(ours, to_result(direct, spec[0], "sft", minis["mmlu-mini"].task_hash, B.lm_eval_version(),
                                 0.0, 0, 1000))
    assert ours.apply_chat_template
    prompt = direct["samples"]["mmlu-mini"][0]["arguments"][0][0]
    assert prompt.startswith("<|system|>\nThe following are multiple choice") and "<|assistant|>" in prompt


@pytest.mark.slow
def test_loglikelihood_rolling_and_generate_until_equal_hflm(pool, tiny_models):
    from lm_eval.models.huggingface import HFLM
    from tinymodels import CORPUS

    from harness.benchmarks.engine_lm import EngineLM

    long_text = " ".join(CORPUS * 8)  # longer than the tiny model's 512-token context: several windows
    texts = ["The quick brown fox jumps over the lazy dog.", "대한민국의 수도는 서울입니다.", long_text]
    engine = pool.engine("dpo")
    assert len(engine.tokenizer(long_text).input_ids) > 2 * engine.max_length
    rolling = [_instance("loglikelihood_rolling", t) for t in texts]
    prompts = ["What is the capital of France?", "대한민국의 수도는", "Give an antonym of hot."]
    gen = [_instance("generate_until", p, {"until": ["."], "max_gen_toks": 8, "do_sample": False}) for p in prompts]
    ours = EngineLM(engine, batch_size=4, name="dpo")
    ours_rolling, ours_gen = ours.loglikelihood_rolling(rolling), ours.generate_until(gen)
    model, tok = pool.model_and_tokenizer("dpo")
    hflm = HFLM(pretrained=model, tokenizer=tok, batch_size=4)
    assert ours_rolling == pytest.approx(hflm.loglikelihood_rolling(rolling, disable_tqdm=True), rel=1e-6)
    # the same text, except that a generation cut by max_gen_toks inside a multi-byte character
    # ends without HFLM's trailing U+FFFD (harness/models/prompts.py drop_partial_char)
    assert ours_gen == [drop_partial_char(x) for x in hflm.generate_until(gen, disable_tqdm=True)]


# --------------------------------------------------------------------------- results


@pytest.mark.slow
def test_result_records_for_the_run_directory(runs):
    r = runs["sft"][0]["mmlu-mini"]
    assert r.lm_eval_version == B.lm_eval_version() and r.num_fewshot == 0 and r.limit == 10
    rec = r.samples[0]
    assert set(rec) >= {"task", "doc_id", "question", "choices", "loglikelihoods", "pred", "gold", "acc"}
    assert rec["choices"] == ["A", "B", "C", "D"] and len(rec["options"]) == 4
    d = r.to_dict()
    assert "samples" not in d and d["metrics"]["acc"]["n"] == 10
    json.dumps(r.to_dict(with_samples=True))  # serialisable
    back = B.BenchmarkResult.from_dict(d, samples=r.samples)
    assert back.metrics["acc"] == r.metrics["acc"] and back.samples == r.samples


@pytest.mark.slow
def test_benchmark_group_pairs_models_with_mcnemar(runs):
    from harness.metrics.stats import mcnemar

    base, sft = runs["base"][0]["hellaswag-mini"], runs["sft"][0]["hellaswag-mini"]
    g = B.benchmark_group({"base": base, "sft": sft}, ["base", "sft"])
    assert g["kind"] == "benchmark"
    assert list(g["models"]) == ["base", "sft"]
    assert set(g["models"]["sft"]) == {"acc", "acc_norm"}
    MetricValue.from_dict(g["models"]["base"]["acc"])
    tests = {t["metric"]: t for t in g["paired"]}
    assert set(tests) == {"acc", "acc_norm"}
    t = tests["acc"]
    assert (t["a"], t["b"], t["test"]) == ("sft", "base", "mcnemar")
    a = [r["acc"] for r in sft.samples]
    b = [r["acc"] for r in base.samples]
    assert t["diff"] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert t["p_value"] == pytest.approx(mcnemar(a, b)[1])
    assert g["info"]["lm_eval_version"] == B.lm_eval_version()
    assert g["info"]["task_hash"] == sft.task_hash
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


def test_generation_task_samples_keep_the_response():
    s = {"doc_id": 3, "doc": {"question": "1+1?"}, "arguments": [["1+1?\nAnswer:", {"until": ["\n"]}]],
         "resps": [["2 because"]], "filtered_resps": ["2"], "target": "2", "exact_match": 1.0}
    rec = sample_record("gen", s)
    assert rec["response"] == "2" and rec["loglikelihoods"] == [] and rec["pred"] is None
    assert rec["choices"] == [] and rec["exact_match"] == 1.0 and rec["question"] == "1+1?"
    assert rec["gold"] == "2"


# --------------------------------------------------------------------------- errors


def test_unknown_task_name_is_a_harness_error(minis_root):
    with pytest.raises(HarnessError) as e:
        B.run_benchmarks(_FakeEngine(), [BenchmarkSpec(name="mmlu-mnii")], "m", minis_root=minis_root)
    msg = str(e.value)
    assert "'mmlu-mnii'" in msg and "Did you mean mmlu-mini" in msg
    assert all(n in msg for n in B.MINI_NAMES) and "lm_eval --tasks list" in msg
    assert "\n" not in msg


@pytest.mark.slow
def test_a_hub_dataset_offline_is_a_harness_error(minis_root, tmp_path):
    (tmp_path / "hubtask.yaml").write_text(
        "task: harness_test_hub_task\ndataset_path: harness-test-org/no-such-dataset\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: '{{q}}'\ndoc_to_choice: ['A', 'B']\ndoc_to_target: 0\n"
        "metric_list:\n  - metric: acc\n", encoding="utf-8")
    with pytest.raises(HarnessError) as e:
        B.run_benchmarks(_FakeEngine(), [BenchmarkSpec(name="harness_test_hub_task", limit=2)], "m",
                         task_dirs=[tmp_path], minis_root=minis_root)
    msg = str(e.value)
    assert "harness_test_hub_task" in msg and "offline" in msg and "hub" in msg and "mmlu-mini" in msg


def test_offline_error_classifier():
    class OfflineModeIsEnabled(Exception):
        pass

    try:
        try:
            raise OfflineModeIsEnabled("no")
        except OfflineModeIsEnabled as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert _is_offline_error(outer)
    assert not _is_offline_error(ValueError("shape mismatch in matmul"))


@pytest.mark.slow  # runs lm-eval on a tiny model (~30 s)
def test_the_limit_flag_caps_benchmarks_and_a_limited_run_never_resumes_into_a_full_one(tiny_models, tmp_path,
                                                                                      monkeypatch):
    """`-n 3 --benchmarks mmlu-mini` asks 3 questions (not the 280 of the mini, nor the config's
    own limit 30, which naming the benchmark on the command line keeps); the limit is in the
    unit key, so resuming with another -n computes the benchmark again."""
    from typer.testing import CliRunner

    from harness.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "harness.yaml").write_text(
        f"models:\n  m: {{path: {tiny_models['base']}}}\nbenchmarks: [{{name: mmlu-mini, limit: 30, batch_size: 4}}]\n"
        "output_dir: out\nbootstrap_resamples: 100\n")
    result = CliRunner().invoke(app, ["run", "-q", "-n", "3", "--benchmarks", "mmlu-mini"])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    assert len(_read_jsonl(run / "benchmarks" / "m" / "mmlu-mini.jsonl")) == 3
    summary = json.loads((run / "benchmarks" / "m" / "mmlu-mini.summary.json").read_text())
    assert summary["limit"] == 3 and summary["n"] == 3
    import yaml

    snapshot = yaml.safe_load((run / "config.yaml").read_text())
    assert snapshot["benchmarks"] == [{"name": "mmlu-mini", "num_fewshot": 0, "limit": 3, "batch_size": 4,
                                       "apply_chat_template": False}]  # the configured entry, capped
    result = CliRunner().invoke(app, ["run", "-q", "-n", "5", "--benchmarks", "mmlu-mini", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert len(_read_jsonl(run / "benchmarks" / "m" / "mmlu-mini.jsonl")) == 5
