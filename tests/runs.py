"""Run directories for tests, built one way: ``make_run`` writes the parts a run has through ``RunDir``.

    run = make_run(tmp_path / "reports" / "run-1", {"schema": 1, "models": [...], "groups": {...}},
                   config={"gates": [...]}, samples={("sft", "demo-en"): [Sample(...), ...]})

The ``make_run`` fixture (tests/conftest.py) does the same under the test's ``tmp_path``.
tests/fixtures/run_demo is a stored run built with it (tests/fixtures/make_run_fixture.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.store import RunDir


def make_run(path: str | os.PathLike, scores: Mapping[str, Any] | None = None, *,
             config: Mapping[str, Any] | str | None = None,
             run_info: Mapping[str, Any] | None = None,
             samples: Mapping[tuple[str, str], Iterable[Any]] | None = None,
             benchmarks: Mapping[tuple[str, str], Iterable[Any]] | None = None,
             verdicts: Mapping[tuple[str, str, str], Iterable[Any]] | None = None,
             units: Mapping[str, Mapping[str, Any]] | None = None) -> RunDir:
    """Create the run directory ``path`` and write the parts given (None leaves a part out):

    - ``scores``: scores.json, written as given
    - ``config``: config.yaml, a mapping (dumped as YAML) or the file's text
    - ``run_info``: run.json
    - ``samples``: ``{(model, task): [Sample or dict, ...]}`` -> samples/<model>/<task>.jsonl
    - ``benchmarks``: ``{(model, bench): [record, ...]}`` -> benchmarks/<model>/<bench>.jsonl
    - ``verdicts``: ``{(judge, model, task): [Verdict or dict, ...]}`` -> judge/<judge>/<model>/<task>.jsonl
      (pairwise verdicts: model ``<a>_vs_<b>``)
    - ``units``: ``{key: info}`` -> finished-unit markers units/<key>.json
    """
    target = Path(path)
    run = RunDir.create(target.parent, target.name)
    for (model, task), rows in (samples or {}).items():
        run.write_samples(model, task, rows)
    for (model, bench), rows in (benchmarks or {}).items():
        run.write_jsonl(run.benchmark_path(model, bench).relative_to(run.path), rows)
    for (judge, model, task), rows in (verdicts or {}).items():
        run.write_jsonl(run.verdicts_path(judge, model, task).relative_to(run.path), rows)
    if scores is not None:
        run.write_json("scores.json", scores)
    if run_info is not None:
        run.write_json("run.json", run_info)
    if config is not None:
        if not isinstance(config, str):
            import yaml

            config = yaml.safe_dump(dict(config), allow_unicode=True)
        run.write_text("config.yaml", config)
    for key, info in (units or {}).items():
        run.mark_unit_done(key, dict(info))
    return run
