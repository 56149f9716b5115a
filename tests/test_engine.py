from __future__ import annotations

import dataclasses
import math

import pytest

from harness.backends.hf import HFEngine
from harness.models.prompts import drop_partial_char, get_format

PROMPTS = ["The quick brown fox", "대한민국의 수도는 서울입니다. 자동차가", "0 1 2",
           "What is the capital of France? The capital of France is", "Give", "다음 문장을 존댓말로 바꾸세요."]


@pytest.fixture(scope="module")
def loaded(tiny_models):
    import torch
    from transformers import AutoModelForCausalLM

    from harness.models.hf_load import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_models["lora_a_merged"], dtype=torch.float32).eval()
    return model, load_tokenizer(str(tiny_models["base"]))


class _Bound:
    """An engine plus the prompt format every generate() call passes (the pool's job in a run)."""

    def __init__(self, engine, fmt):
        self.engine, self.fmt = engine, fmt

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def generate(self, prompts, **kw):
        return self.engine.generate(prompts, fmt=self.fmt, **kw)


def _engine(loaded, fmt="plain", batch_size=4):
    model, tok = loaded
    return _Bound(HFEngine(model, tok, "cpu", batch_size=batch_size), get_format(fmt, tok))


def test_batched_greedy_equals_one_at_a_time(loaded):
    batched = _engine(loaded, batch_size=4).generate(PROMPTS, max_new_tokens=16)
    single = _engine(loaded, batch_size=1).generate(PROMPTS, max_new_tokens=16)
    assert [(g.raw, g.n_tokens) for g in batched] == [(g.raw, g.n_tokens) for g in single]
    assert len({g.raw for g in batched}) > 1  # rows really differ (order restored)
    g = batched[0]
    assert g.truncated == (g.finish == "length") and g.n_tokens <= 16


def _stop_for(raw: str) -> tuple[str, int]:
    for k in range(1, len(raw) - 2):
        s = raw[k:k + 2]
        if s.isascii() and s.strip() and raw.find(s) == k:
            return s, k
    raise AssertionError(f"no usable stop in {raw!r}")


def test_stop_strings_per_row(loaded):
    eng = _engine(loaded)
    free = eng.generate(PROMPTS, max_new_tokens=20)
    stop, k = _stop_for(free[0].raw)
    progress = []
    got = eng.generate(PROMPTS, max_new_tokens=20, stop=[stop], progress=lambda d, n: progress.append((d, n)))
    assert got[0].finish == "stop" and not got[0].truncated
    assert got[0].text == free[0].raw[:k].strip() and stop not in got[0].text
    assert got[0].n_tokens < free[0].n_tokens
    for f, g in zip(free[1:], got[1:]):  # other rows run on unless they contain the stop
        if stop not in f.raw:
            assert g.raw == f.raw
    assert progress[-1] == (len(PROMPTS), len(PROMPTS))
    # a format's own stop strings are honored the same way
    model, tok = loaded
    fmt = dataclasses.replace(get_format("plain", tok), stop_strings=[stop])
    via_fmt = HFEngine(model, tok, "cpu").generate(PROMPTS[:1], fmt=fmt, max_new_tokens=20)
    assert via_fmt[0].text == got[0].text and via_fmt[0].finish == "stop"


def test_eos_ends_generation(loaded):
    """Force EOS: an engine whose eos is the first greedy token stops after one token."""
    model, tok = loaded
    eng = _engine(loaded)
    import torch

    with torch.inference_mode():
        first_id = int(model(input_ids=torch.tensor([tok(PROMPTS[0]).input_ids])).logits[0, -1].argmax())
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = first_id
    try:
        g = eng.generate(PROMPTS[:1], max_new_tokens=10)[0]
    finally:
        model.generation_config.eos_token_id = old
    assert g.finish == "eos" and g.n_tokens == 1 and g.raw == "" and not g.truncated


def _manual_logprob(model, ctx_ids, cont_ids):
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ctx_ids + cont_ids])).logits[0]
    lp = torch.log_softmax(logits.float(), -1)
    total, greedy = 0.0, True
    for i, t in enumerate(cont_ids):
        row = lp[len(ctx_ids) + i - 1]
        total += float(row[t])
        greedy &= int(row.argmax()) == t
    return total, greedy


def test_loglikelihood_matches_manual(loaded):
    model, tok = loaded
    eng = _engine(loaded, batch_size=2)
    reqs = [("The quick brown", " fox"), ("What is the capital of France? ", "Paris"),
            ("대한민국의 수도는", " 서울입니다."), ("", "0 1 2")]
    got = eng.loglikelihood(reqs)
    for (ctx, cont), (lp, greedy) in zip(reqs, got):
        if ctx:
            n = len(ctx) - len(ctx.rstrip())  # lm-eval moves trailing spaces to the continuation
            c, x = ctx[: len(ctx) - n], ctx[len(ctx) - n:] + cont
            whole = tok(c + x).input_ids
            ctx_ids = tok(c).input_ids
            want = _manual_logprob(model, whole[:len(ctx_ids)], whole[len(ctx_ids):])
        else:
            want = _manual_logprob(model, [tok.bos_token_id], tok(cont).input_ids)
        assert lp == pytest.approx(want[0], abs=1e-4) and greedy == want[1]
        assert lp < 0
    # the greedy continuation is reported as greedy (pick a context whose argmax token does not
    # merge with the context when re-encoded)
    import torch

    found = 0
    for ctx in PROMPTS:
        ids = tok(ctx).input_ids
        with torch.inference_mode():
            t = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        cont = tok.decode([t])
        if tok(ctx + cont).input_ids == ids + [t]:
            found += 1
            assert eng.loglikelihood([(ctx, cont)])[0][1] is True
    assert found


def test_token_nll_masks_prompt_exactly(loaded):
    import torch

    model, tok = loaded
    eng = _engine(loaded)
    prompts = ["질문: 대한민국의 수도는?\n답변:", "Give an antonym of hot."]
    targets = [" 서울입니다.", " The antonym of hot is cold."]
    got = eng.token_nll(prompts, targets)
    for p, t, r in zip(prompts, targets, got):
        whole = tok(p + t).input_ids
        n_prompt = len(tok(p).input_ids)
        labels = torch.tensor([[-100] * n_prompt + whole[n_prompt:]])
        with torch.inference_mode():
            loss = model(input_ids=torch.tensor([whole]), labels=labels).loss
        assert r.n_tokens == len(whole) - n_prompt
        assert r.nll_sum == pytest.approx(float(loss) * r.n_tokens, rel=1e-5)
        assert r.n_bytes == len(t.encode("utf-8"))
        assert r.perplexity == pytest.approx(math.exp(float(loss)), rel=1e-5)
        assert r.bits_per_byte == pytest.approx(r.nll_sum / r.n_bytes / math.log(2))


def test_rolling_nll_windows(loaded):
    eng = _engine(loaded, batch_size=3)
    texts = ["The quick brown fox jumps over the lazy dog. 대한민국의 수도는 서울입니다.", "0 1 2 3"]
    full = eng.rolling_nll(texts)  # fits in one window: every token scored once given a prefix
    for t, r in zip(texts, full):
        want = eng.loglikelihood([("", t)])[0][0]
        assert r.nll_sum == pytest.approx(-want, rel=1e-5)
        assert r.n_tokens == len(eng.tokenizer(t, add_special_tokens=False).input_ids)
    small = eng.rolling_nll(texts, max_length=8, stride=4)
    assert [r.n_tokens for r in small] == [r.n_tokens for r in full]  # each token scored exactly once
    assert small[0].nll_sum != pytest.approx(full[0].nll_sum, rel=1e-6)  # shorter context, other numbers
    with pytest.raises(ValueError):
        eng.rolling_nll(texts, max_length=8, stride=9)


def test_render_and_chat_prompts_generate(loaded):
    model, tok = loaded
    fmt = get_format("chat", tok)
    p = fmt.render("What is the capital of France?", system="Be brief.")
    assert p == "<|system|>\nBe brief.</s>\n<|user|>\nWhat is the capital of France?</s>\n<|assistant|>\n"
    out = HFEngine(model, tok, "cpu").generate([p], fmt=fmt, max_new_tokens=5)[0]
    assert "</s>" not in out.text and out.text == out.text.strip()


def test_oom_halves_batch_size(loaded):
    model, tok = loaded
    eng = _Bound(HFEngine(model, tok, "cpu", batch_size="auto"), get_format("plain", tok))
    assert eng.batch_size == 16
    real = eng._greedy  # the greedy decoder every batch goes through
    calls = []

    def flaky(ids, *a, **kw):
        calls.append(ids.shape[0])
        if ids.shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(ids, *a, **kw)

    eng.engine._greedy = flaky
    got = eng.generate(PROMPTS, max_new_tokens=6)
    assert eng.batch_size == 2 and calls[:4] == [6, 6, 4, 2]
    assert [g.raw for g in got] == [g.raw for g in _engine(loaded, batch_size=1).generate(PROMPTS, max_new_tokens=6)]


def test_greedy_decoder_matches_transformers_generate(loaded):
    """The Engine's own greedy loop (rows leave the batch when they end) picks the same tokens
    as model.generate(do_sample=False) on each prompt alone."""
    import torch

    model, tok = loaded
    eng = _engine(loaded, batch_size=6)
    got = eng.generate(PROMPTS, max_new_tokens=12)
    for prompt, g in zip(PROMPTS, got):
        ids = torch.tensor([eng._encode(prompt)])
        ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                             do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = ref[0, ids.shape[1]:].tolist()
        if tok.eos_token_id in new:
            new = new[:new.index(tok.eos_token_id)]
        text = tok.decode(new, skip_special_tokens=False)
        if len(new) == 12:  # cut by the limit: a trailing partial character is dropped (no U+FFFD)
            text = drop_partial_char(text)
        assert g.raw == text


def test_scoring_splits_batches_whose_logits_exceed_the_budget(loaded, monkeypatch):
    """Whole-reference scoring (perplexity) keeps every reference position's logits: a batch whose
    kept logits pass LOGITS_BUDGET_BYTES is cut into several forward passes, with the same numbers."""
    import harness.backends.hf as hf

    model, _ = loaded
    prompts = ["Q: " + p for p in PROMPTS]
    targets = [" " + p + " and more words here." for p in PROMPTS]
    eng = _engine(loaded, batch_size=6)
    whole = eng.token_nll(prompts, targets)
    calls = []
    hook = model.register_forward_hook(lambda mod, args, kwargs, out: calls.append(1), with_kwargs=True)
    try:
        whole_calls = len(calls)
        eng.token_nll(prompts, targets)
        one_batch = len(calls) - whole_calls
        per_position = 4 * eng._vocab_size()
        monkeypatch.setattr(hf, "LOGITS_BUDGET_BYTES", 12 * per_position)  # ~12 scored positions a pass
        start = len(calls)
        cut = eng.token_nll(prompts, targets)
        split = len(calls) - start
    finally:
        hook.remove()
    assert one_batch == 1 and split > 2
    for a, b in zip(whole, cut):
        assert b.n_tokens == a.n_tokens and b.nll_sum == pytest.approx(a.nll_sum, rel=1e-5, abs=1e-5)


def test_scoring_on_a_cpu_cuts_passes_to_a_token_budget(loaded, monkeypatch):
    """On a CPU a scoring forward pass holds at most TOKENS_PER_PASS padded tokens (its
    activations grow with them): a batch of long rows becomes several passes, no pass is wider
    than the budget unless one row alone is, and the numbers are the same. Accelerators and
    HARNESS_TOKENS_PER_PASS=0 have no limit; a bad value is a one-line error."""
    import harness.backends.hf as hf
    from harness.errors import HarnessError

    model, _ = loaded
    prompts = ["Q: " + p * 3 for p in PROMPTS]
    eng = _engine(loaded, batch_size=6)
    shapes = []
    hook = model.register_forward_hook(lambda mod, args, kwargs, out: shapes.append(tuple(kwargs["input_ids"].shape)),
                                       with_kwargs=True)
    try:
        monkeypatch.setenv("HARNESS_TOKENS_PER_PASS", "0")
        whole = eng.loglikelihood([(p, " yes") for p in prompts])
        assert len(shapes) == 1
        monkeypatch.delenv("HARNESS_TOKENS_PER_PASS")
        width = shapes[0][1]
        monkeypatch.setattr(hf, "TOKENS_PER_PASS", 2 * width)  # two of the longest rows a pass
        shapes.clear()
        cut = eng.loglikelihood([(p, " yes") for p in prompts])
    finally:
        hook.remove()
    assert len(shapes) >= 2 and all(rows * w <= 2 * width for rows, w in shapes)
    assert sum(rows for rows, _ in shapes) == len(prompts)
    for a, b in zip(whole, cut):
        assert b[0] == pytest.approx(a[0], rel=1e-5, abs=1e-5) and b[1] == a[1]
    assert hf._tokens_per_pass("cuda:0") == float("inf") and hf._tokens_per_pass("cpu") == 2 * width
    monkeypatch.setenv("HARNESS_TOKENS_PER_PASS", "many")
    with pytest.raises(HarnessError, match="HARNESS_TOKENS_PER_PASS"):
        hf._tokens_per_pass("cpu")
