"""The vLLM backend's tests: collected only where vllm imports (``make test-vllm`` runs them in
.venv-vllm); elsewhere this directory is left out, so the main ``make test`` does not change."""

from __future__ import annotations

import importlib.util
import os


def _has_vllm() -> bool:
    # this folder is itself importable as a namespace package "vllm" (tests/ is on sys.path):
    # only a real package has an origin
    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin is not None


collect_ignore_glob = [] if _has_vllm() else ["test_*.py"]

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
