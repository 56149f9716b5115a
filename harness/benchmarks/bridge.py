"""Bridge to lm-evaluation-harness: find the tasks, run ``simple_evaluate`` over a model's Engine,
turn what comes back into ``BenchmarkResult``s.

A benchmark name is an offline mini (``minis.py``), a task in one of ``task_dirs``, or any
lm-eval task or group name; lm-eval's default task index (~14k YAML files) is built only when a
name is not found among the first two. Datasets of hub tasks come from the Hugging Face hub;
offline they fail with a HarnessError that points to the minis.

Models reach lm-eval only through ``EngineLM`` (``engine_lm.py``): the caller hands in the
model's Engine, which activates that model's adapters itself before every call.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.benchmarks.minis import (
    MINI_NAMES,
    MiniInfo,
    build_minis,
    cache_dir,
    lm_eval_dir,
    lm_eval_version,
)
from harness.benchmarks.results import BenchmarkResult, shorten, to_result
from harness.errors import HarnessError
from harness.progress import silence_loggers


def _is_offline_error(err: BaseException) -> bool:
    """Whether an exception (or one in its cause chain) means the hub/network was needed."""
    names = ("OfflineModeIsEnabled", "DatasetNotFoundError", "ConnectionError", "ConnectTimeout",
             "LocalEntryNotFoundError", "HfHubHTTPError", "RepositoryNotFoundError", "HFValidationError")
    hints = ("offline", "couldn't reach", "could not reach", "connection", "hf_datasets_offline",
             "hf_hub_offline", "huggingface.co", "doesn't exist on the hub", "not found on the hugging face hub")
    seen = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if any(c.__name__ in names for c in type(e).__mro__):
            return True
        if any(h in str(e).lower() for h in hints):
            return True
        e = e.__cause__ or e.__context__
    return False


# --------------------------------------------------------------------------- task lookup

_SCAN: tuple[frozenset, frozenset] | None = None
_TASK_MANAGERS: dict[tuple, Any] = {}


def _scan_default_names() -> tuple[frozenset, frozenset]:
    """Cheap look at lm-eval's task YAMLs: the names declared by ``task:``/``group:``/``tag:``
    and every name-like token, so that an unknown name fails fast without building lm-eval's
    task index (~25 s). The scan (2-6 s) is cached per process and on disk, per lm-eval version
    (``<cache>/lm-eval-names-<version>.json``, ~0.1 s to read)."""
    global _SCAN
    if _SCAN is not None:
        return _SCAN
    import json

    disk = cache_dir() / f"lm-eval-names-{lm_eval_version()}.json"
    try:
        data = json.loads(disk.read_text(encoding="utf-8"))
        _SCAN = (frozenset(data["names"]), frozenset(data["tokens"]))
        return _SCAN
    except (OSError, ValueError, KeyError, TypeError):
        pass
    names: set[str] = set()
    tokens: set[str] = set()
    decl = re.compile(r"^\s*(?:-\s*)?(?:task|group|tag)\s*:\s*['\"]?([A-Za-z0-9_.\-]+)", re.MULTILINE)
    token = re.compile(r"[A-Za-z0-9_.\-]+")
    for p in (lm_eval_dir() / "tasks").rglob("*.yaml"):
        try:
            t = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        names.update(decl.findall(t))
        tokens.update(token.findall(t))
    _SCAN = (frozenset(names), frozenset(tokens))
    try:
        disk.parent.mkdir(parents=True, exist_ok=True)
        tmp = disk.with_suffix(f".tmp{id(names)}")
        tmp.write_text(json.dumps({"names": sorted(names), "tokens": sorted(tokens)}), encoding="utf-8")
        tmp.replace(disk)
    except OSError:
        pass  # a read-only cache: scan again next time
    return _SCAN


def _unknown(name: str, candidates: Sequence[str]) -> HarnessError:
    close = difflib.get_close_matches(name, list(MINI_NAMES), n=3, cutoff=0.6)
    others = [c for c in candidates if c not in MINI_NAMES]
    close += difflib.get_close_matches(name, others, n=3 - len(close), cutoff=0.6) if len(close) < 3 else []
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return HarnessError(
        f"unknown benchmark {name!r}.{hint}",
        where="benchmarks",
        fix=f"Use an offline mini ({', '.join(MINI_NAMES)}) or any lm-eval task name "
            "(see `lm_eval --tasks list`).",
    )


def check_benchmark_names(names: Sequence[str], task_dirs: Sequence[str | Path] = ()) -> None:
    """Names checked while planning, before any model loads: listed once, and each an offline mini,
    a task YAML in ``task_dirs``, or a name some lm-eval task file declares or mentions (a cheap
    scan; lm-eval's own index is built only when the benchmark runs)."""
    dup = sorted({n for n in names if list(names).count(n) > 1})
    if dup:
        raise HarnessError(f"benchmark {dup[0]!r} is listed twice", where="benchmarks", fix="List each benchmark once.")
    local = {p.stem for d in task_dirs for p in Path(d).glob("*.y*ml")}
    for name in names:
        if name in MINI_NAMES or name in local:
            continue
        decl, tokens = _scan_default_names()
        if name not in tokens:
            raise _unknown(name, sorted(decl))


def _task_manager(names: Sequence[str], minis: dict[str, MiniInfo], task_dirs: Sequence[str | Path] = (),
                  log=None):
    """A TaskManager that knows every name in ``names`` (cached per process; lm-eval's default
    index is built only when a name is not a mini or in ``task_dirs``)."""
    from lm_eval.tasks import TaskManager

    include = [str(Path(m.task_yaml).parent) for m in minis.values()]
    include += [str(Path(d).resolve()) for d in task_dirs]
    key = (tuple(include), False)
    if key not in _TASK_MANAGERS:
        _TASK_MANAGERS[key] = TaskManager(include_path=include, include_defaults=False)
    tm = _TASK_MANAGERS[key]
    known = set(tm.all_tasks)
    missing = [n for n in names if n not in known]
    if not missing:
        return tm
    key = (tuple(include), True)
    if key not in _TASK_MANAGERS:
        decl, tokens = _scan_default_names()
        for n in missing:
            if n not in tokens:  # appears in no task YAML at all: certainly unknown
                raise _unknown(n, list(known) + sorted(decl))
        if log:
            log(f"indexing lm-eval's built-in tasks for {', '.join(missing)} (~20 s, once per process)")
        t0 = time.perf_counter()
        _TASK_MANAGERS[key] = TaskManager(include_path=include, include_defaults=True)
        if log:
            log(f"task index built in {time.perf_counter() - t0:.1f}s")
    tm = _TASK_MANAGERS[key]
    known = set(tm.all_tasks)
    for n in missing:
        if n not in known:
            raise _unknown(n, list(known))
    return tm


# --------------------------------------------------------------------------- running


def _batch_size(bs: int | str, engine) -> int | str:
    if bs == "auto":
        info = getattr(engine, "info", None)
        if str((info.details if info is not None else {}).get("device", "cpu")) == "cpu":
            return 16  # batch size probing is pointless (and slow) on a CPU
    return bs


def run_benchmarks(
    engine,
    specs: Sequence,
    model_name: str,
    *,
    chat_format: Any = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    task_dirs: Sequence[str | Path] = (),
    minis_root: str | Path | None = None,
    n_resamples: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, BenchmarkResult]:
    """Run lm-eval benchmarks on one model through its Engine.

    ``engine`` serves the model (``ModelPool.engine(name)``: it activates the model's adapters
    itself). ``specs`` are ``BenchmarkSpec``s (name, num_fewshot, limit, batch_size,
    apply_chat_template); ``chat_format`` (``ModelPool.format(name, "chat")``) is needed only
    when one of them applies the chat template. ``task_dirs`` are extra folders of lm-eval task
    YAMLs. ``progress(done, total)`` hears lm-eval's requests as the engine finishes each batch.
    Returns ``{spec.name: BenchmarkResult}``.
    """

    from lm_eval import simple_evaluate

    from harness.benchmarks.engine_lm import EngineLM, RequestCounter

    specs = list(specs)
    if not specs:
        return {}
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise HarnessError(f"benchmark {min(dup)!r} is listed twice", where="benchmarks",
                           fix="List each benchmark once.")
    root = Path(minis_root) if minis_root is not None else cache_dir()
    wanted_minis = [n for n in names if n in MINI_NAMES]
    minis = build_minis(root, wanted_minis) if wanted_minis else {}
    tm = _task_manager(names, minis, task_dirs, log)
    version = lm_eval_version()

    counter = RequestCounter(progress)
    # Specs with the same settings go through one simple_evaluate call, as the lm_eval CLI does
    # with --tasks a,b,c: one request pool sorted by length, so batches (and numbers) match it.
    groups: dict[tuple, list] = {}
    for spec in specs:
        bs = _batch_size(spec.batch_size, engine)
        groups.setdefault((spec.num_fewshot, spec.limit, bool(spec.apply_chat_template), bs), []).append(spec)
    results: dict[str, BenchmarkResult] = {}
    for (fewshot, limit, chat, bs), group in groups.items():
        lm = EngineLM(engine, chat_format=chat_format, batch_size=bs, name=model_name, progress=counter)
        task_names = [s.name for s in group]
        if log:
            log(f"{model_name}: {', '.join(task_names)} (fewshot {fewshot}, limit {limit})")
        t0 = time.perf_counter()
        try:
            with quiet_lm_eval():
                res = simple_evaluate(
                    model=lm,
                    tasks=task_names,
                    num_fewshot=fewshot,
                    limit=limit,
                    log_samples=True,
                    apply_chat_template=chat,
                    task_manager=tm,
                    random_seed=seed,
                    numpy_random_seed=seed,
                    torch_random_seed=seed,
                    fewshot_random_seed=seed,
                    bootstrap_iters=1000,  # mean metrics: closed-form stderr (as lm-eval)
                    verbosity=None,
                )
        except HarnessError:
            raise
        except Exception as err:
            if _is_offline_error(err):
                hub = [n for n in task_names if n not in MINI_NAMES] or task_names
                what = f"benchmark {hub[0]!r}" if len(hub) == 1 else f"one of the benchmarks {', '.join(hub)}"
                raise HarnessError(
                    f"{what}: its dataset cannot be loaded offline ({type(err).__name__}: {shorten(err, 160)})",
                    where="benchmarks",
                    fix="It needs the Hugging Face hub (unset HF_DATASETS_OFFLINE / HF_HUB_OFFLINE, or "
                        f"pre-download it); offline, use the minis: {', '.join(MINI_NAMES)}.",
                ) from err
            raise
        seconds = (time.perf_counter() - t0) / len(group)  # shared call: an even share each
        for spec in group:
            mini = minis.get(spec.name)
            results[spec.name] = to_result(res, spec, model_name, mini.task_hash if mini else None, version,
                                           seconds, seed, n_resamples)
    return {s.name: results[s.name] for s in specs}


@contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """What lm-eval prints besides its results, off while ``simple_evaluate`` runs: its warnings
    (``Overwriting default num_fewshot ...`` for every task given a num_fewshot) and its
    "Building contexts" bars, unless HARNESS_VERBOSE; and always the ``git describe`` it runs to
    record a commit hash (harness records its own environment), which prints
    ``fatal: not a git repository`` outside a git checkout, and torch's environment report
    (several subprocesses, unused)."""
    import functools

    import lm_eval.api.task as task_mod
    import lm_eval.evaluator as ev

    from harness.env import env_flag

    saved = {(ev, "get_git_commit_hash"): ev.get_git_commit_hash, (ev, "add_env_info"): ev.add_env_info}
    ev.get_git_commit_hash = lambda: None
    ev.add_env_info = _versions_only
    if not env_flag("HARNESS_VERBOSE"):
        silence_loggers(("lm_eval", "lm-eval"))
        saved[(task_mod, "tqdm")] = task_mod.tqdm
        task_mod.tqdm = functools.partial(task_mod.tqdm, disable=True)
        _datasets_bars_off()
    try:
        yield
    finally:
        for (mod, attr), value in saved.items():
            setattr(mod, attr, value)


def _versions_only(storage: dict[str, Any]) -> None:
    """lm-eval's ``add_env_info`` without torch's environment report (pip, nvidia-smi, ...)."""
    from importlib.metadata import PackageNotFoundError, version

    for key, dist in (("transformers_version", "transformers"), ("lm_eval_version", "lm_eval")):
        try:
            storage[key] = version(dist)
        except PackageNotFoundError:
            storage[key] = "N/A"


def _datasets_bars_off() -> None:
    try:
        import datasets

        datasets.disable_progress_bars()
    except Exception:  # noqa: BLE001 - no datasets, or an older one: nothing to switch off
        pass
