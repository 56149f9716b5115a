"""The judge's disk cache: one JSON file per successful judgement, keyed by everything that
decides the reply (judge hash, backend, model identity and options, messages, reply schema)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from harness.errors import HarnessError
from harness.io import write_json

from .backends import JudgeBackend
from .definition import JudgeDefinition


def default_cache_dir() -> Path:
    from harness.env import cache_root

    return cache_root() / "judge"


class JudgeCache:
    """One JSON file per key under ``root/<key[:2]>/<key>.json``; writes are atomic."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.writes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(defn: JudgeDefinition, backend: JudgeBackend, messages: list, seed: int | None) -> str:
        payload = {
            "judge": defn.hash,
            "spec": backend.spec,
            "identity": backend.identity(seed),
            "messages": messages,
            "schema": defn.schema(),
        }
        canon = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self._path(key)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("value") is None:
            return None
        with self._lock:
            self.hits += 1
        return data

    def put(self, key: str, data: dict) -> None:
        p = self._path(key)
        try:
            write_json(p, data, indent=None)
        except OSError as e:
            raise HarnessError(
                f"cannot write the judge cache at {self.root}: {e.strerror or e}",
                fix="Set HARNESS_CACHE to a writable directory.",
            ) from None
        with self._lock:
            self.writes += 1
