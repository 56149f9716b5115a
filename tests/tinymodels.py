"""Tiny random models the tests build themselves (offline, seconds on a CPU).

``tiny_base(dir)`` writes a 2-layer Llama with a BPE tokenizer trained here on a small
English + Korean corpus, a chat template, and no pad token (as many real bases ship).
``tiny_lora(base_dir, out_dir)`` writes a LoRA adapter with non-zero random weights.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Rewrite the sentence in passive voice.",
    "What is the capital of France? The capital of France is Paris.",
    "Give an antonym of hot. The antonym of hot is cold.",
    "Convert 5 kilometers to meters. 5 kilometers is 5000 meters.",
    "### Instruction:\n### Input:\n### Response:\n",
    "### 지시사항:\n### 입력:\n### 응답:\n질문: 답변:",
    "대한민국의 수도는 서울입니다. 자동차가 번개처럼 빠릅니다.",
    "다음 문장을 존댓말로 바꾸세요. 오늘 날씨가 좋다.",
    "Answer with A, B, C or D. Answer: A B C D",
    '{"is_stock_related": true, "summary": "삼성전자 주가 상승"}',
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 + - * / = . , ? ! : ;",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_base(out_dir: str | Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Write a tiny random Llama + tokenizer to ``out_dir`` (idempotent)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    tok = build_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def tiny_lora(base_dir: str | Path, out_dir: str | Path, seed: int = 1, r: int = 4,
              base_name: str | None = None) -> Path:
    """Write a LoRA adapter with random non-zero A and B (so it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    if (out / "adapter_config.json").exists():
        return out
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj", "o_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(3.0)
    peft_model.save_pretrained(out)
    if base_name is not None:
        import json

        cfg_path = out / "adapter_config.json"
        data = json.loads(cfg_path.read_text())
        data["base_model_name_or_path"] = base_name
        cfg_path.write_text(json.dumps(data, indent=2))
    return out
