"""Preference tasks (``type: preference``) end to end on the tiny models: per-pair values equal a
hand computation from the Engine's token_nll, the DPO implicit reward against the reference one
adapter below, resume, bad rows, plan-time refusals, the report and gates on pref_acc."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness import api
from harness.errors import HarnessError

PAIRS = [
    {"prompt": "Give the antonym of hot.", "chosen": "cold", "rejected": "The antonym of hot is cold, I think."},
    {"prompt": "What is the capital of France?", "chosen": "Paris", "rejected": "Rome"},
    {"prompt": "Convert 5 kilometers to meters.", "chosen": "5000 meters", "rejected": "500 meters"},
    {"prompt": "대한민국의 수도는?", "chosen": "서울입니다.", "rejected": "The capital is Seoul."},
    {"prompt": "Rewrite in passive voice.\n\nThe dog bit the man.", "chosen": "The man was bitten by the dog.",
     "rejected": "dog man"},
    {"prompt": "Answer with A, B, C or D.", "chosen": "A", "rejected": "B C D"},
    {"prompt": "Give an antonym of cold.", "chosen": "hot", "rejected": "cold"},
    {"prompt": "What is 2 + 3?", "chosen": "5", "rejected": "The answer is 6."},
    {"prompt": "다음 문장을 존댓말로 바꾸세요.\n\n오늘 날씨가 좋다.", "chosen": "오늘 날씨가 좋아요.", "rejected": "오늘 날씨가 좋다."},
    {"prompt": "Convert 1 kilometer to meters.", "chosen": "1000 meters", "rejected": "10 meters"},
    {"prompt": "The quick brown fox jumps over the lazy dog. Repeat it.",
     "chosen": "The quick brown fox jumps over the lazy dog.", "rejected": "fox"},
    {"prompt": "자동차가 얼마나 빠릅니까?", "chosen": "자동차가 번개처럼 빠릅니다.", "rejected": "0 1 2 3"},
]
N = len(PAIRS)  # at least the report's and the gates' minimum coverage (n >= 10)
GEN_ROWS = [{"instruction": f"Say {w}.", "input": "", "output": w} for w in ("yes", "no", "서울")]
RESAMPLES = 100


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _project(root: Path, models: dict, *, pairs=PAIRS, gates=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _jsonl(root / "pairs.jsonl", pairs)
    _jsonl(root / "gen.jsonl", GEN_ROWS)
    (root / "pref.yaml").write_text(yaml.safe_dump({"name": "pref", "type": "preference", "data": "pairs.jsonl"}))
    for name in ("gen1", "gen2"):
        (root / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, "data": "gen.jsonl",
                                                           "metrics": ["exact_match", "lang_consistency"]}))
    cfg = {"models": models, "tasks": ["gen1.yaml", "gen2.yaml", "pref.yaml"], "generation": {"max_new_tokens": 4},
           "bootstrap_resamples": RESAMPLES, "output_dir": "out"}
    if gates:
        cfg["gates"] = gates
    (root / "harness.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return root / "harness.yaml"


def _stack(t: dict, dpo_adapter: Path | None = None) -> dict:
    return {"base": {"path": str(t["base"])},
            "sft": {"adapter": str(t["lora_a"]), "base": "base"},
            "dpo": {"adapter": str(dpo_adapter or t["lora_on_a"]), "base": "sft"}}


@pytest.fixture(scope="module")
def dpo_with_manifest(tiny_models, tmp_path_factory) -> Path:
    """The tiny DPO-on-SFT adapter with a harness-train.json that says kind dpo, beta 0.25."""
    folder = tmp_path_factory.mktemp("dpo") / "dpo"
    shutil.copytree(tiny_models["lora_on_a"], folder)
    (folder / "harness-train.json").write_text(json.dumps({"kind": "dpo", "hyperparameters": {"beta": 0.25}}))
    return folder


@pytest.fixture(scope="module")
def pref_run(tiny_models, tmp_path_factory, dpo_with_manifest):
    root = tmp_path_factory.mktemp("pref")
    config = _project(root, _stack(tiny_models, dpo_with_manifest),
                      gates=[{"rule": "dpo.pref.pref_acc >= 0.0", "name": "pref-floor"}])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE", str(root / "cache"))
        rundir = api.run(config)
    return config, rundir.path


def _samples(run: Path, model: str) -> list[dict]:
    return [json.loads(line) for line in (run / "samples" / model / "pref.jsonl").read_text().splitlines()]


def _hand_logprobs(tiny_models, dpo_folder, model: str):
    """log p(answer | prompt) of every pair, computed here from the Engine's token_nll one pair at
    a time, with the prompt rendered as generation renders it."""
    from harness.config import ModelSpec
    from harness.models.pool import ModelPool
    from harness.models.prompts import render_training

    specs = {k: ModelSpec(**v) for k, v in _stack(tiny_models, dpo_folder).items()}
    from harness.models.resolve import resolve_models

    pool = ModelPool(resolve_models(specs, Path.cwd()))
    engine, fmt = pool.engine(model), pool.format(model)
    out = []
    for row in PAIRS:
        pair = []
        for answer in (row["chosen"], row["rejected"]):
            prompt, completion = render_training(row["prompt"], "", answer, fmt)
            assert prompt == fmt.render(row["prompt"], "")  # the generation prompt
            (nll,) = engine.token_nll([prompt], [completion.rstrip(" \n")])
            pair.append((-nll.nll_sum, nll.n_tokens))
        out.append(pair)
    return out


def test_accuracy_and_margins_equal_a_hand_computation(pref_run, tiny_models, dpo_with_manifest):
    _, run = pref_run
    scores = json.loads((run / "scores.json").read_text())
    group = scores["groups"]["pref"]
    assert group["kind"] == "task" and group["info"]["type"] == "preference" and group["info"]["n_items"] == N
    for model in ("base", "sft", "dpo"):
        hand = _hand_logprobs(tiny_models, dpo_with_manifest, model)
        acc = [float(c[0] > r[0]) for c, r in hand]
        acc_norm = [float(c[0] / c[1] > r[0] / r[1]) for c, r in hand]
        margin = [c[0] - r[0] for c, r in hand]
        stored = _samples(run, model)
        for s, (c, r), a, an, m in zip(stored, hand, acc, acc_norm, margin):
            assert s["meta"]["logp_chosen"] == pytest.approx(c[0], abs=1e-4)
            assert s["meta"]["tokens_rejected"] == r[1]
            assert s["metrics"]["pref_acc"] == a and s["metrics"]["pref_acc_norm"] == an
            assert s["metrics"]["logp_margin"] == pytest.approx(m, abs=1e-4)
            assert s["response"] == (s["meta"]["chosen"] if a else s["meta"]["rejected"])
        mv = group["models"][model]
        assert mv["pref_acc"]["value"] == pytest.approx(sum(acc) / len(acc))
        assert mv["pref_acc_norm"]["value"] == pytest.approx(sum(acc_norm) / len(acc_norm))
        assert mv["logp_margin"]["value"] == pytest.approx(sum(margin) / len(margin), abs=1e-4)
        assert mv["pref_acc"]["n"] == N and len(mv["pref_acc"]["ci"]) == 2
    # the tiny random models do not all agree on every pair: the accuracies are not all equal
    assert len({group["models"][m]["logp_margin"]["value"] for m in ("base", "sft", "dpo")}) == 3
    tests = {(p["metric"], p["a"], p["b"]): p for p in group["paired"]}
    assert tests[("pref_acc", "dpo", "sft")]["test"] == "mcnemar"
    assert tests[("logp_margin", "dpo", "sft")]["test"] == "paired-bootstrap"


def test_dpo_reward_margin_against_the_reference(pref_run):
    _, run = pref_run
    group = json.loads((run / "scores.json").read_text())["groups"]["pref"]
    # dpo (manifest kind dpo, beta 0.25) against sft; sft (no manifest) against base; base has none
    assert group["info"]["dpo_reference"]["dpo"] == {"reference": "sft", "beta": 0.25,
                                                     "beta_source": "harness-train.json"}
    assert group["info"]["dpo_reference"]["sft"]["reference"] == "base"
    assert group["info"]["dpo_reference"]["sft"]["beta"] == 0.1
    assert "default" in group["info"]["dpo_reference"]["sft"]["beta_source"]
    assert "dpo_reward_margin" not in group["models"]["base"]
    sft = {s["id"]: s for s in _samples(run, "sft")}
    rewards = []
    for s in _samples(run, "dpo"):
        ref = sft[s["id"]]["meta"]
        assert s["meta"]["ref_logp_chosen"] == pytest.approx(ref["logp_chosen"], abs=1e-5)
        want = 0.25 * ((s["meta"]["logp_chosen"] - ref["logp_chosen"])
                       - (s["meta"]["logp_rejected"] - ref["logp_rejected"]))
        assert s["metrics"]["dpo_reward_margin"] == pytest.approx(want, abs=1e-4)
        assert s["metrics"]["dpo_reward_acc"] == float(want > 0)
        rewards.append(want)
    assert group["models"]["dpo"]["dpo_reward_margin"]["value"] == pytest.approx(sum(rewards) / N, abs=1e-4)


def test_preference_groups_are_not_pooled_and_the_report_shows_them(pref_run):
    _, run = pref_run
    scores = json.loads((run / "scores.json").read_text())
    info = json.loads((run / "run.json").read_text())
    assert info["tasks"] == ["gen1", "gen2"] and info["preference_tasks"] == ["pref"]
    assert scores["groups"]["all"]["info"]["tasks"] == ["gen1", "gen2"]
    assert "pref_acc" not in scores["groups"]["all"]["models"]["base"]
    assert scores["groups"]["all"]["models"]["base"]["exact_match"]["missing"] == 0
    report = (run / "report.md").read_text(encoding="utf-8")
    assert "pref · pref\\_acc" in report  # the summary row (Markdown escapes the underscore)
    assert "dpo\\_reward\\_margin" in report


def test_gates_address_pref_acc(pref_run):
    from harness.gate import evaluate_gates

    _, run = pref_run
    value = json.loads((run / "scores.json").read_text())["groups"]["pref"]["models"]["dpo"]["pref_acc"]["value"]
    rows = evaluate_gates(run, ["dpo.pref.pref_acc >= 0.0", f"dpo.pref_acc > {value}", "dpo.pref_acc >= sft.pref_acc - 1",
                                "base.pref.dpo_reward_margin > 0"]).rows
    assert [r.passed for r in rows] == [True, False, True, False]
    assert rows[3].actual is None and "base.pref.dpo_reward_margin" in rows[3].reason  # fails closed
    assert evaluate_gates(run).rows[0].passed  # the config's own gate (checked against the plan too)


def test_resume_reuses_the_preference_units(pref_run, monkeypatch):
    from harness.models import pool

    config, run = pref_run
    before = {p: p.stat().st_mtime_ns for p in (run / "samples").rglob("pref.jsonl")}

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded on resume")

    monkeypatch.setattr(pool.ModelPool, "__init__", refuse)
    monkeypatch.setenv("HARNESS_CACHE", str(Path(config).parent / "cache"))
    rundir = api.run(config, resume=run)
    assert rundir.units_computed == 0 and rundir.units_reused >= 9
    assert {p: p.stat().st_mtime_ns for p in (run / "samples").rglob("pref.jsonl")} == before


def test_dpo_alone_still_gets_its_reference(tiny_models, tmp_path, dpo_with_manifest):
    """--models dpo: the reference (sft) is not evaluated but still scored for the reward margin,
    on dpo's prompts (as in DPO training), not on sft's own (sft has a system prompt here)."""
    models = _stack(tiny_models, dpo_with_manifest)
    models["sft"]["system_prompt"] = "SFT-SYSTEM be terse."
    config = _project(tmp_path, models)
    run = api.run(config, models=["dpo"], tasks=["pref.yaml"]).path
    group = json.loads((run / "scores.json").read_text())["groups"]["pref"]
    assert list(group["models"]) == ["dpo"] and group["info"]["dpo_reference"]["dpo"]["reference"] == "sft"
    assert group["models"]["dpo"]["dpo_reward_margin"]["n"] == N
    assert not (run / "samples" / "sft").exists()
    hand_sft = _hand_logprobs(tiny_models, dpo_with_manifest, "sft")  # no system prompt: dpo's texts
    for s, (c, r) in zip(_samples(run, "dpo"), hand_sft):
        assert "SFT-SYSTEM" not in s["prompt"] and s["prompt"].endswith("<|assistant|>\n")
        assert s["meta"]["ref_logp_chosen"] == pytest.approx(c[0], abs=1e-4)
        assert s["meta"]["ref_logp_rejected"] == pytest.approx(r[0], abs=1e-4)


@pytest.mark.parametrize("row, message", [
    ({"prompt": "p", "rejected": "r"}, r"pairs.jsonl:3: missing field 'chosen'"),
    ({"prompt": "p", "chosen": "c", "rejected": ""}, r"pairs.jsonl:3: missing field 'rejected'"),
    ({"chosen": "c", "rejected": "r"}, r"pairs.jsonl:3: missing field 'prompt'"),
    ({"prompt": "p", "chosen": ["c"], "rejected": "r"}, r"pairs.jsonl:3: field 'chosen' must be text, got list"),
])
def test_bad_rows_name_the_line(tiny_models, tmp_path, row, message):
    config = _project(tmp_path, _stack(tiny_models), pairs=PAIRS[:2] + [row])
    with pytest.raises(HarnessError, match=message) as err:
        api.run(config)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_task_files_check_the_type(tmp_path):
    from harness.tasks import load_tasks

    _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    (tmp_path / "a.yaml").write_text("name: a\ntype: preference\ndata: pairs.jsonl\nmetrics: [rouge]\n")
    with pytest.raises(HarnessError, match=r"a.yaml.*preference task computes preference only, not 'rouge'"):
        load_tasks([str(tmp_path / "a.yaml")])
    (tmp_path / "b.yaml").write_text("name: b\ndata: pairs.jsonl\nmetrics: [preference]\n")
    with pytest.raises(HarnessError, match=r"metric 'preference' needs 'type: preference'"):
        load_tasks([str(tmp_path / "b.yaml")])
    (tmp_path / "c.yaml").write_text("name: c\ntype: preferences\ndata: pairs.jsonl\n")
    with pytest.raises(HarnessError, match=r"c.yaml.*type"):
        load_tasks([str(tmp_path / "c.yaml")])
    (tmp_path / "d.yaml").write_text("name: d\ntype: preference\ndata: pairs.jsonl\n")
    (task,) = load_tasks([str(tmp_path / "d.yaml")])
    assert task.metrics == ["preference"]


def test_a_responses_model_is_refused_at_plan_time(tiny_models, tmp_path):
    answers = _jsonl(tmp_path / "answers.jsonl", [{"instruction": r["instruction"], "input": "", "model_response": "x"}
                                                  for r in GEN_ROWS])
    config = _project(tmp_path, {"base": {"path": str(tiny_models["base"])}, "ext": {"responses": str(answers)}})
    with pytest.raises(HarnessError, match=r"models.ext is a 'responses:' model .* preference task pref needs"):
        api.run(config)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_engine_without_log_probs_is_refused(tiny_models, tmp_path, monkeypatch):
    from dataclasses import replace

    from harness.engine import GENERATE
    from harness.models.pool import ModelPool

    real = ModelPool.engine

    def generate_only(self, name, batch_size=None):
        engine = real(self, name, batch_size)
        engine.info = replace(engine.info, backend="served", capabilities=frozenset({GENERATE}))
        return engine

    monkeypatch.setattr(ModelPool, "engine", generate_only)
    config = _project(tmp_path, {"base": {"path": str(tiny_models["base"])}})
    with pytest.raises(HarnessError, match=r"models.base: the served backend gives no log-probabilities, which "
                                           r"preference task pref needs"):
        api.run(config, tasks=["pref.yaml"])


def test_preference_accuracy_of_the_retrain_check_is_the_same_computation(tiny_models):
    """harness.train.evaluate (``demo --retrain``'s check) scores through the same texts."""
    from harness.config import ModelSpec
    from harness.metrics.preference import AnswerLogprob, pair_values
    from harness.models.pool import ModelPool
    from harness.models.resolve import resolve_models
    from harness.train.evaluate import preference_accuracy

    pool = ModelPool(resolve_models({"m": ModelSpec(path=str(tiny_models["base"]))}, Path.cwd()))
    model, tok = pool.model_and_tokenizer("m")
    fmt = pool.format("m")
    hand = []
    for row in PAIRS:
        pair = []
        for answer in (row["chosen"], row["rejected"]):
            from harness.train.evaluate import scored_texts

            (nll,) = pool.engine("m").token_nll(*map(list, zip(scored_texts(row["prompt"], "", answer, fmt))))
            pair.append(AnswerLogprob(-nll.nll_sum, nll.n_tokens))
        hand.append(pair_values(*pair)["pref_acc"])
    assert preference_accuracy(model, tok, PAIRS, fmt) == pytest.approx(sum(hand) / len(hand))


def test_pair_values_by_hand():
    from harness.metrics.preference import AnswerLogprob, dpo_reward_margin, pair_values, preference_accuracy

    v = pair_values(AnswerLogprob(-4.0, 2), AnswerLogprob(-6.0, 6))
    assert v == {"pref_acc": 1.0, "pref_acc_norm": 0.0, "logp_margin": 2.0, "logp_margin_norm": -1.0}
    tie = pair_values(AnswerLogprob(-3.0, 1), AnswerLogprob(-3.0, 1))
    assert tie["pref_acc"] == 0.0 and tie["pref_acc_norm"] == 0.0  # a tie is not a preference
    with_ref = pair_values(AnswerLogprob(-4.0, 2), AnswerLogprob(-6.0, 6), ref_chosen=AnswerLogprob(-5.0, 2),
                           ref_rejected=AnswerLogprob(-5.0, 6), beta=0.5)
    assert with_ref["dpo_reward_margin"] == pytest.approx(0.5 * ((-4 + 5) - (-6 + 5)))
    assert with_ref["dpo_reward_acc"] == 1.0
    assert dpo_reward_margin(-1, -1, -1, -1) == 0.0
    assert preference_accuracy([1.0, 2.0, 3.0], [0.0, 2.0, 4.0]) == pytest.approx(1 / 3)
    assert pair_values(AnswerLogprob(0.0, 0), AnswerLogprob(-1.0, 1))["pref_acc_norm"] is None
