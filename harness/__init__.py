"""harness: evaluate base, SFT and DPO checkpoints of one model side by side.

The notebook API (``from harness import run, report, gate``) is imported lazily so that
``import harness`` stays cheap.
"""

__version__ = "0.1.0"

_API = {"run", "report", "gate", "compare", "train_sft", "train_dpo", "load_config", "resolve_models"}


def __getattr__(name):
    if name in _API:
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
