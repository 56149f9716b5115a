"""LLM-as-judge: backends (ollama / openai / hf), tolerant reply parsing, judging with
concurrency, retries, re-asks and a disk cache, and aggregation into scores.json groups.

Heavy client libraries (ollama, openai, httpx) are imported only when a backend is used.
"""

from .backends import (
    JudgeBackend,
    JudgeRequestError,
    OllamaBackend,
    OpenAIBackend,
    Reply,
    TransientJudgeError,
    make_backend,
    parse_backend_spec,
)
from .cache import JudgeCache, default_cache_dir
from .definition import JudgeDefinition, JudgeSpec, available_judges, load_judge
from .inprocess import HFBackend
from .items import JudgeItem, PairItem, default_pairs, items_from_samples, pairs_from_samples
from .pairwise import judge_pairwise
from .parse import Parsed, parse_preference, parse_score
from .pointwise import judge_pointwise
from .summary import count_missing, summarize_pairwise, summarize_pointwise

__all__ = [
    "HFBackend",
    "JudgeBackend",
    "JudgeCache",
    "JudgeDefinition",
    "JudgeItem",
    "JudgeRequestError",
    "JudgeSpec",
    "OllamaBackend",
    "OpenAIBackend",
    "PairItem",
    "Parsed",
    "Reply",
    "TransientJudgeError",
    "available_judges",
    "count_missing",
    "default_cache_dir",
    "default_pairs",
    "items_from_samples",
    "judge_pairwise",
    "judge_pointwise",
    "load_judge",
    "make_backend",
    "pairs_from_samples",
    "parse_backend_spec",
    "parse_preference",
    "parse_score",
    "summarize_pairwise",
    "summarize_pointwise",
]
