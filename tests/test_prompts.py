from __future__ import annotations

import pytest

from harness.config import PROMPT_FORMATS
from harness.errors import HarnessError
from harness.models.prompts import extract_response, get_format, render_training


@pytest.fixture(scope="module")
def tok():
    from tinymodels import build_tokenizer

    return build_tokenizer()


def test_alpaca_ko_renders_literally():
    fmt = get_format("alpaca-ko")
    assert fmt.render("다음 문장을 존댓말로 바꾸세요.", "오늘 날씨가 좋다.") == (
        "아래는 작업을 설명하는 지시사항과 추가 맥락을 제공하는 입력이 짝을 이루는 예제입니다. "
        "요청을 적절히 완료하는 응답을 작성하세요.\n\n"
        "### 지시사항:\n다음 문장을 존댓말로 바꾸세요.\n\n"
        "### 입력:\n오늘 날씨가 좋다.\n\n"
        "### 응답:\n")
    assert fmt.render("대한민국의 수도는?") == (
        "아래는 작업을 설명하는 지시사항입니다. 요청을 적절히 완료하는 응답을 작성하세요.\n\n"
        "### 지시사항:\n대한민국의 수도는?\n\n### 응답:\n")
    assert "### 지시사항" in fmt.stop_strings


def test_alpaca_stanford_text_and_system():
    fmt = get_format("alpaca")
    assert fmt.render("Give an antonym of hot.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes "
        "the request.\n\n### Instruction:\nGive an antonym of hot.\n\n### Response:\n")
    assert fmt.render("Convert.", "5 km") == (
        "Below is an instruction that describes a task, paired with an input that provides further "
        "context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nConvert.\n\n### Input:\n5 km\n\n### Response:\n")
    assert fmt.render("Q", system="Be brief.").startswith("Be brief.\n\n### Instruction:\nQ")
    assert "### Instruction" in fmt.stop_strings


@pytest.mark.parametrize("name,expected,stop", [
    ("chatml", "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nI\n\nX<|im_end|>\n<|im_start|>assistant\n",
     "<|im_end|>"),
    ("zephyr", "<|system|>\nS</s>\n<|user|>\nI\n\nX</s>\n<|assistant|>\n", "</s>"),
    ("llama3", ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nI\n\nX<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"), "<|eot_id|>"),
    ("gemma", "<bos><start_of_turn>user\nS\n\nI\n\nX<end_of_turn>\n<start_of_turn>model\n", "<end_of_turn>"),
    ("phi3", "<|system|>\nS<|end|>\n<|user|>\nI\n\nX<|end|>\n<|assistant|>\n", "<|end|>"),
    ("qa-ko", "S\n\n질문: I\nX\n답변:", "\n질문:"),
    ("plain", "S\n\nI\n\nX", None),
])
def test_named_formats_render_exactly(name, expected, stop):
    fmt = get_format(name)
    assert fmt.render("I", "X", system="S") == expected
    if stop:
        assert stop in fmt.stop_strings
    assert fmt.name == name and len(fmt.template_hash) == 12


def test_every_config_format_is_known(tok):
    hashes = {get_format(n, tok).template_hash for n in PROMPT_FORMATS}
    assert len(hashes) == len(PROMPT_FORMATS)
    assert get_format("qa-ko").render("대한민국의 수도는?") == "질문: 대한민국의 수도는?\n답변:"
    assert get_format("chatml").render("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_chat_uses_tokenizer_template(tok):
    fmt = get_format("chat", tok)
    assert fmt.render("Hi", system="Sys") == "<|system|>\nSys</s>\n<|user|>\nHi</s>\n<|assistant|>\n"
    assert "</s>" in fmt.stop_strings
    import hashlib

    assert fmt.template_hash == hashlib.sha256(tok.chat_template.encode()).hexdigest()[:12]
    assert get_format(None, tok).name == "chat"


def test_chat_without_template_suggests_alpaca(tok):
    import copy

    t = copy.copy(tok)
    t.chat_template = None
    with pytest.raises(HarnessError, match="no chat template.*prompt_format: alpaca"):
        get_format("chat", t)


def test_user_jinja_string_and_file(tmp_path):
    fmt = get_format("Q: {{ instruction }}{% if input %} ({{ input }}){% endif %}\nA:")
    assert fmt.render("2+2?", "math") == "Q: 2+2? (math)\nA:"
    assert fmt.name == "custom"
    f = tmp_path / "mine.jinja"
    f.write_text("{{ system }}\n### Task:\n{{ instruction }}\n### Answer:\n", encoding="utf-8")
    ff = get_format(str(f))
    assert ff.render("do it", system="sys") == "sys\n### Task:\ndo it\n### Answer:\n"
    assert "### Task" in ff.stop_strings and ff.response_headers == ["### Answer:"]
    assert ff.template_hash != fmt.template_hash


def test_unknown_format_and_broken_template():
    with pytest.raises(HarnessError, match="not a known format"):
        get_format("alpacca")
    with pytest.raises(HarnessError, match="not a valid Jinja"):
        get_format("{{ instruction ")


def test_extract_response_strips_repeated_korean_header():
    fmt = get_format("alpaca-ko")
    assert extract_response("### 응답:\n서울입니다.\n\n### 응답:\n서울입니다.", fmt) == "서울입니다."
    assert extract_response("  서울입니다.\n### 지시사항:\n다른 질문", fmt) == "서울입니다."
    leaked = "### 지시사항:\n대한민국의 수도는?\n\n### 응답:\n서울입니다.</s>"
    assert extract_response(leaked, fmt) == "서울입니다."
    prompt = fmt.render("대한민국의 수도는?")
    assert extract_response(prompt + "서울입니다.", fmt, prompt=prompt) == "서울입니다."


def test_extract_response_other_formats():
    assert extract_response("Paris.<|im_end|>\n<|im_start|>user\nmore", get_format("chatml")) == "Paris."
    assert extract_response("### Response: cold\n### Response: hot", get_format("alpaca")) == "cold"
    assert extract_response(" 서울\n질문: 또", get_format("qa-ko")) == "서울"
    assert extract_response("a STOP b", get_format("plain"), stop=["STOP"]) == "a"


def test_render_training_pairs(tok):
    p, c = render_training("Give an antonym of hot.", "", "cold", get_format("alpaca", tok))
    assert p.endswith("### Response:\n") and c == "cold</s>"
    p, c = render_training("I", "", "ans", get_format("chatml", tok))
    assert c == "ans<|im_end|>"
    p, c = render_training("I", "", "ans", get_format("chat", tok))
    assert p == "<|user|>\nI</s>\n<|assistant|>\n" and c == "ans</s>\n"
    p, c = render_training("수도는?", "", "서울", get_format("qa-ko", tok))
    assert p == "질문: 수도는?\n답변:" and c == " 서울</s>"


def test_render_messages_keeps_earlier_turns_in_named_formats():
    """A conversation rendered with a one-slot format: the last user turn is the instruction,
    earlier turns a transcript in the input, the item's system message wins."""
    fmt = get_format("qa-ko")
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "첫 질문"},
            {"role": "assistant", "content": "첫 답"}, {"role": "user", "content": "둘째 질문"}]
    out = fmt.render_messages(msgs, system="ignored")
    assert out == fmt.render("둘째 질문", "user: 첫 질문\nassistant: 첫 답", "S")
    assert fmt.render_messages([{"role": "user", "content": "q"}]) == fmt.render("q")


# ---------------------------------------------------------------- a character cut by the token limit
KOREAN = "자동차가 번개처럼 빠릅니다. 한국어 문장을 끝까지 읽어 주세요! 감사합니다 😀"


@pytest.fixture(scope="module")
def smollm_tok():
    """The real SmolLM2 tokenizer (byte-level BPE) that ships with the demo adapter."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from harness.backends.tokens import prepare_tokenizer

    path = Path(__file__).resolve().parent.parent / "harness" / "demo" / "sft"
    return prepare_tokenizer(AutoTokenizer.from_pretrained(path))


def _engine(tok):
    from harness.backends.tokens import TokenEngine

    eng = TokenEngine()
    eng.tokenizer = tok
    return eng


def test_length_cut_generation_never_ends_in_a_replacement_char(smollm_tok):
    tok = smollm_tok
    eng = _engine(tok)
    ids = tok(KOREAN, add_special_tokens=False).input_ids
    full = tok.decode(ids)
    assert full == KOREAN
    cut_inside = 0
    for k in range(1, len(ids) + 1):
        cut_inside += tok.decode(ids[:k]).endswith("\ufffd")  # what the plain decode gives
        g = eng._to_generation(ids[:k], fmt=None, stops=[], eos_ids=[tok.eos_token_id], max_new_tokens=k)
        assert g.finish == "length" and g.truncated
        assert not g.raw.endswith("\ufffd") and not g.text.endswith("\ufffd"), (k, g.raw)
        assert "\ufffd" not in g.raw
        assert full.startswith(g.raw) and full.startswith(g.text), (k, g.raw)
    assert cut_inside >= 10  # the cuts really fall inside characters (3-byte Hangul, 4-byte emoji)


def test_genuine_replacement_chars_are_kept(smollm_tok):
    tok = smollm_tok
    eng = _engine(tok)
    text = "값은 \ufffd 입니다 \ufffd"
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text
    # the answer ended by itself (EOS): its last U+FFFD is the model's
    ended = eng._to_generation(ids + [tok.eos_token_id], fmt=None, stops=[], eos_ids=[tok.eos_token_id],
                               max_new_tokens=len(ids) + 5)
    assert ended.finish == "eos" and ended.raw == text
    # cut by the limit: a U+FFFD inside the text stays
    inner = tok("값은 \ufffd 입니다", add_special_tokens=False).input_ids
    cut = eng._to_generation(inner, fmt=None, stops=[], eos_ids=[tok.eos_token_id], max_new_tokens=len(inner))
    assert cut.finish == "length" and cut.raw == "값은 \ufffd 입니다"


def test_drop_partial_char_and_served_replies():
    from harness.backends.served import make_generation
    from harness.models.prompts import drop_partial_char

    assert drop_partial_char("가나\ufffd") == "가나"
    assert drop_partial_char("가나\ufffd\ufffd\ufffd\ufffd") == "가나\ufffd"  # at most 3 missing bytes
    assert drop_partial_char("가\ufffd나") == "가\ufffd나"
    assert drop_partial_char("") == ""
    cut = make_generation({"text": "빠릅니\ufffd", "finish_reason": "length", "n_tokens": 8}, None, [])
    assert cut.text == "빠릅니" and cut.truncated
    ended = make_generation({"text": "빠릅니\ufffd", "finish_reason": "stop", "n_tokens": 8}, None, [])
    assert ended.text == "빠릅니\ufffd"
