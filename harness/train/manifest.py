"""``harness-train.json``: how a checkpoint was made (written next to every adapter).

Reports draw loss curves from ``log``; the loader checks ``base.sha256`` against the base it
resolves, because an adapter on the wrong base of the same shape loads without error.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MANIFEST = "harness-train.json"


def model_fingerprint(path_or_id: str) -> str | None:
    """sha256 over a local model folder's config and weight files; None for a hub id."""
    p = Path(path_or_id)
    if not p.is_dir():
        return None
    h = hashlib.sha256()
    files = sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".bin", ".gguf") or f.name == "config.json")
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16] if files else None


def base_fingerprint(folder: str | Path) -> str | None:
    """The fingerprint ``harness.models.resolve`` checks against the folder an adapter resolves onto
    (a model folder, or the SFT adapter folder under a DPO adapter); None for a hub id."""
    if not Path(folder).is_dir():
        return None
    from harness.models.resolve import fingerprint

    return fingerprint(folder)


def library_versions() -> dict[str, str]:
    from harness.env import package_versions

    return {k: v for k, v in package_versions().items() if k in
            ("harness", "torch", "transformers", "peft", "trl", "accelerate")}


def build_manifest(*, kind: str, base: dict[str, Any], data: dict[str, Any], hyperparameters: dict[str, Any],
                   log_history: list[dict[str, Any]], started: float, device: str,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    log = []
    for entry in log_history:
        row = {"step": entry.get("step")}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm", "epoch", "rewards/accuracies",
                    "eval_rewards/accuracies", "rewards/margins", "eval_rewards/margins"):
            if key in entry:
                row[key] = entry[key]
        if any(k in row for k in ("loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies")):
            log.append(row)
    return {
        "kind": kind,
        "base": base,
        "data": data,
        "hyperparameters": hyperparameters,
        "log": log,
        "wall_time_s": round(time.time() - started, 1),
        "device": device,
        "versions": library_versions(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> Path:
    path = Path(out_dir) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
