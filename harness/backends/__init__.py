"""Inference backends: each file is one implementation of the ``harness.engine.Engine`` protocol
(``hf`` = transformers). The model pool picks the backend a model's config names."""
