"""harness: evaluate base, SFT and DPO checkpoints of one model side by side.

The notebook API is imported lazily so that ``import harness`` stays cheap::

    from harness import gate, open_run, run
    rundir = run("harness.yaml", models=["base", "sft"])  # or open_run("reports/<run-id>")
    df = rundir.to_pandas()        # model, group, metric, value, lo, hi, n, missing, ...
    gate(rundir.path)              # GateReport: .passed, .rows (a table in Jupyter)

Import the verbs by name: ``harness.gate``, ``harness.report`` and ``harness.arena`` are also
subpackages, and once one is imported (a run imports them) the attribute is the subpackage, not the
verb; ``harness.api`` always has every verb (``harness.api.arena`` too).
"""

__version__ = "0.1.0"

# name -> the module that defines it (imported on first use)
_LAZY = {
    "run": "harness.api", "report": "harness.api", "gate": "harness.api", "compare": "harness.api",
    "train_sft": "harness.api", "train_dpo": "harness.api", "load_config": "harness.api",
    "resolve_models": "harness.api", "retrain_demo": "harness.api", "keep_workers": "harness.api",
    "open_run": "harness.store", "RunDir": "harness.store",
    "GateReport": "harness.gate.check", "HarnessError": "harness.errors", "HarnessConfig": "harness.config",
}

__all__ = [  # = _LAZY's names (a test checks it)
    "GateReport", "HarnessConfig", "HarnessError", "RunDir", "__version__", "compare", "gate", "keep_workers",
    "load_config", "open_run", "report", "resolve_models", "retrain_demo", "run", "train_dpo", "train_sft",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
