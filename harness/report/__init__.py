"""Reports rendered from a stored run directory only (no model is loaded, no torch import).

- ``rows``:     the tables (``Row`` / ``Cell`` / ``Delta``) built from scores.json groups, number formatting
- ``verdict``:  ``verdict(scores)`` -> ``Verdict``: the best model and one sentence per consecutive pair
- ``terminal``: ``print_summary(run_dir)``, what `harness run` ends with and `harness show` prints
- ``layout``:   family groups, folded rows, key metrics of sample cards, flattened manifests
- ``view``:     ``build_view(run)`` -> ``ReportView``, what report.md and report.html show
- ``markdown``, ``html`` (+ ``templates/``, ``charts``): the two renderers
- ``write``:    ``write_reports(run_dir)`` writes ``report.md`` and ``report.html``
- ``compare``:  the run-vs-run comparison (``compare.md`` / ``compare.html``)
"""

from harness.report.rows import (
    SIG_NOTE,
    Cell,
    Delta,
    Row,
    comparisons,
    decimals_for,
    find_test,
    fmt,
    fmt_ci,
    fmt_count,
    fmt_seconds,
    make_delta,
    metric_rows,
    metric_value,
)
from harness.report.view import (
    ReportView,
    Section,
    TrainInfo,
    build_view,
    build_warnings,
    is_small_local_judge,
    load_items,
    main_metric,
    models_info,
    normalize_matrix,
    top_differences,
)
from harness.report.write import write_reports

__all__ = [
    "SIG_NOTE", "Cell", "Delta", "ReportView", "Row", "Section", "TrainInfo", "build_view", "build_warnings",
    "comparisons", "decimals_for", "find_test", "fmt", "fmt_ci", "fmt_count", "fmt_seconds", "is_small_local_judge",
    "load_items", "main_metric", "make_delta", "metric_rows", "metric_value", "models_info", "normalize_matrix",
    "top_differences", "write_reports",
]
