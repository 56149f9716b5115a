"""Where harness runs: the environment switches it reads, its cache folder, and what a run
records about where it ran (versions, device, git commit)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("harness", "torch", "transformers", "peft", "trl", "accelerate", "lm_eval", "rouge-score",
            "sacrebleu", "bert-score", "kiwipiepy", "ollama", "openai")


def env_flag(*names: str) -> bool:
    """True when any of the environment variables ``names`` is set to 1 / true / yes / on."""
    return any(os.environ.get(n, "").strip().lower() in ("1", "true", "yes", "on") for n in names)


def cache_root() -> Path:
    """``$HARNESS_CACHE`` or ``~/.cache/harness``: zoo models, benchmark minis, the judge cache, logs."""
    env = os.environ.get("HARNESS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness"


def free_memory() -> None:
    """Collect garbage and give cached accelerator memory back (after an engine or a model is dropped)."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (0 where the platform cannot say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / (1024 * 1024 if platform.system() == "Darwin" else 1024), 1)  # macOS: bytes


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc's ``malloc_trim``):
    without it, the memory of a released model stays in this process's resident set, and the
    next thing loaded adds to it instead of reusing it."""
    import gc

    gc.collect()
    if platform.system() != "Linux":
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, ...)
        pass


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed. ``harness`` is
    this package's own version (its distribution is named checkpoint-harness)."""
    if name == "harness":
        from harness import __version__

        return __version__
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    return {name: package_version(name) or "not installed" for name in PACKAGES}


def device_info() -> dict[str, str]:
    info = {"machine": platform.machine(), "python": platform.python_version()}
    try:
        import torch

        if torch.cuda.is_available():
            info["device"] = f"cuda: {torch.cuda.get_device_name(0)}"
        else:
            info["device"] = f"cpu ({torch.get_num_threads()} threads)"
    except ImportError:
        info["device"] = "cpu"
    return info


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment(path: Path) -> dict:
    return {**device_info(), "packages": package_versions(), "git_commit": git_commit(path)}
