"""lm-eval benchmarks: offline minis (``minis``), the bridge that runs lm-eval over a model's
Engine (``bridge``, with the ``LM`` adapter in ``engine_lm``), and results (``results``).

Only names are handed on here; ``engine_lm`` (which imports lm_eval) is not imported.
"""

from harness.benchmarks.bridge import check_benchmark_names, run_benchmarks
from harness.benchmarks.minis import (
    MINI_NAMES,
    MiniInfo,
    build_minis,
    cache_dir,
    lm_eval_version,
    load_hellaswag_items,
    parse_kmmlu_cot_yaml,
    parse_mmlu_cot_prompts,
)
from harness.benchmarks.results import BenchmarkResult, benchmark_group

__all__ = [
    "MINI_NAMES", "BenchmarkResult", "MiniInfo", "benchmark_group", "build_minis", "cache_dir", "check_benchmark_names",
    "lm_eval_version", "load_hellaswag_items", "parse_kmmlu_cot_yaml", "parse_mmlu_cot_prompts",
    "run_benchmarks",
]
