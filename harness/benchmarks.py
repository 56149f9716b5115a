"""Bridge to lm-evaluation-harness, plus offline mini benchmarks.

Offline minis (no hub access needed), built at run time from what the installed packages ship:

- ``mmlu-mini``: the MMLU questions inside lm-eval's
  ``lm_eval/tasks/mmlu/flan_cot_fewshot/_cot_prompts.json`` (the chain-of-thought few-shot
  prompts, one string per subject). Each string is a header line ("The following are multiple
  choice questions (with answers) about X.") followed by blocks separated by a blank line:
  ``Q: <question>\\n(A) .. (B) .. (C) .. (D) ..\\nA: Let's think step by step. ... The answer
  is (X).`` We take the question text, the four choices between the ``(A)``..``(D)`` markers,
  and the answer letter from the last "The answer is (X)" of the CoT target. Blocks with a
  fifth choice ``(E)`` are skipped; one known artifact (a sentence of the previous CoT answer
  that leaked into the next question in ``abstract_algebra``) is cut; exact duplicates
  (same question and choices) are kept once.
- ``kmmlu-mini``: the Korean KMMLU-hard few-shot examples inside
  ``lm_eval/tasks/kmmlu/cot_hard/kmmlu_cot_hard_*.yaml`` (``fewshot_config.samples``: fields
  ``question``, ``A``..``D`` and a CoT ``target`` ending in "정답은 (X) 입니다"). A leading
  "질문:" on the question is dropped (KMMLU questions carry none); the answer is the last
  "정답은 (X)" of the target.
- ``hellaswag-mini``: 40 context + 4 endings items written for this project
  (``harness/data/hellaswag_mini.jsonl``); scored like lm-eval's ``hellaswag`` (acc, acc_norm).

Each mini is written as ``<cache>/benchmarks/<name>/test.jsonl`` plus a generated lm-eval task
YAML next to it (``<cache>`` = ``$HARNESS_CACHE`` or ``~/.cache/harness``); prompts follow
lm-eval's own ``mmlu`` / ``kmmlu`` / ``hellaswag`` templates. The task hash is the sha256 of
the YAML (with the data path left as a placeholder, so it does not depend on the cache
location) and the data bytes.

Any other name is an lm-eval task or group name and goes through lm-eval's default task
index (built only then: it parses ~14k YAML files). Those datasets come from the Hugging Face
hub; offline they fail with a HarnessError that points to the minis.

Models are passed as objects (``HFLM(pretrained=<model>)``): the caller hands in the
PeftModel with the right adapter active. lm-eval's ``peft=`` argument would be ignored for a
model object, so it is never used here.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import write_text
from harness.records import MetricValue

MINI_NAMES = ("mmlu-mini", "kmmlu-mini", "hellaswag-mini")
# (min, max) item counts accepted from the installed package; outside -> the package changed.
_EXPECTED_COUNTS = {"mmlu-mini": (200, 400), "kmmlu-mini": (150, 300), "hellaswag-mini": (30, 200)}
_DATA_PLACEHOLDER = "__DATA_FILE__"
_LETTERS = ("A", "B", "C", "D")
_QUESTION_CHARS = 200

# A sentence of the previous chain-of-thought answer leaked into one question of the
# abstract_algebra prompt (and "\f" of "\factorial" became a form feed / newline).
_MMLU_ARTIFACTS = (
    re.compile(r"^The symmetric group \$S_n\$ has \$\s*actorial\{n\}\$ elements, hence it is not true "
               r"that \$S_\{10\}\$ has 10 elements\.\n"),
)

_MC_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
fewshot_config:
  sampler: first_n
output_type: multiple_choice
description: {description}
doc_to_text: {doc_to_text}
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  source: {source}
"""

_HELLASWAG_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{query}}}}"
doc_to_choice: choices
doc_to_target: "{{{{gold}}}}"
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  source: {source}
"""


# --------------------------------------------------------------------------- minis


@dataclass
class MiniInfo:
    """One built mini benchmark: where its files are and what went into it."""

    name: str
    task_yaml: str
    data_file: str
    n: int
    task_hash: str
    source: str
    n_parsed: int = 0  # items found in the source before dedupe
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_dir() -> Path:
    """``$HARNESS_CACHE`` or ``~/.cache/harness``."""
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness").expanduser()


def _lm_eval_dir() -> Path:
    try:
        import lm_eval
    except ImportError as err:  # pragma: no cover - lm-eval is a dependency
        raise HarnessError(f"lm-eval is not installed ({err})", fix="pip install 'lm-eval>=0.4.9'.") from None
    return Path(lm_eval.__file__).parent


def lm_eval_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _source_file(rel: str) -> Path:
    p = _lm_eval_dir() / rel
    if not p.is_file():
        raise HarnessError(
            f"the installed lm-eval ({lm_eval_version()}) does not ship {rel}",
            where="offline minis",
            fix="Install lm-eval 0.4.x (pip install 'lm-eval>=0.4.9,<0.5') or use hub benchmarks.",
        )
    return p


def parse_mmlu_cot_prompts(text: dict[str, str]) -> tuple[list[dict], dict[str, int]]:
    """MMLU questions out of lm-eval's ``_cot_prompts.json`` (subject -> prompt string).

    Returns the items (``subject``, ``question``, ``choices`` (4), ``answer`` (0-3)) in file
    order and the count of skipped blocks by reason.
    """
    block_re = re.compile(
        r"^(?P<q>.*?)\n\(A\)(?P<a>.*?)\(B\)(?P<b>.*?)\(C\)(?P<c>.*?)\(D\)(?P<d>.*?)\nA: (?P<cot>.*)$", re.DOTALL
    )
    answer_re = re.compile(r"The answer is \(([A-E])\)")
    items: list[dict] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for subject, prompt in text.items():
        body = prompt.strip()
        # drop the header line "The following are multiple choice questions ... about X."
        if body.startswith("The following are"):
            body = body.split("\n\n", 1)[1] if "\n\n" in body else ""
        blocks = re.split(r"(?:^|\n\n)Q: ", body)
        for block in blocks:
            if not block.strip():
                continue
            m = block_re.match(block)
            if not m:
                skip("unparsable block")
                continue
            if re.search(r"\(E\)", m.group("d")):
                skip("more than 4 choices")
                continue
            answers = answer_re.findall(m.group("cot"))
            if not answers or answers[-1] not in _LETTERS:
                skip("no A-D answer in the target")
                continue
            question = m.group("q")
            for art in _MMLU_ARTIFACTS:
                question = art.sub("", question)
            question = question.strip()
            choices = [m.group(k).strip() for k in "abcd"]
            if not question or any(not c for c in choices):
                skip("empty question or choice")
                continue
            items.append({
                "subject": subject,
                "question": question,
                "choices": choices,
                "answer": _LETTERS.index(answers[-1]),
            })
    return items, skipped


def parse_kmmlu_cot_yaml(paths: Sequence[Path]) -> tuple[list[dict], dict[str, int]]:
    """KMMLU-hard questions out of the few-shot examples of lm-eval's ``kmmlu_cot_hard_*.yaml``."""
    import yaml

    answer_re = re.compile(r"정답은\s*\(?([A-D])\)?")
    items: list[dict] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for path in paths:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        subject = str(cfg.get("dataset_name") or Path(path).stem.removeprefix("kmmlu_cot_hard_"))
        for s in (cfg.get("fewshot_config") or {}).get("samples") or []:
            if not all(k in s for k in ("question", "A", "B", "C", "D", "target")):
                skip("missing field")
                continue
            answers = answer_re.findall(str(s["target"]))
            if not answers:
                skip("no answer in the target")
                continue
            question = re.sub(r"^\s*질문\s*[:：]\s*", "", str(s["question"])).strip()
            choices = [str(s[k]).strip() for k in _LETTERS]
            if not question or any(not c for c in choices):
                skip("empty question or choice")
                continue
            items.append({
                "subject": subject,
                "question": question,
                "choices": choices,
                "answer": _LETTERS.index(answers[-1]),
            })
    return items, skipped


def _hellaswag_preprocess(text: str) -> str:
    # lm_eval/tasks/hellaswag/utils.py::preprocess
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def load_hellaswag_items(path: Path | None = None) -> list[dict]:
    """The bundled HellaSwag-style items as lm-eval's hellaswag ``process_docs`` shapes them."""
    path = path or Path(__file__).parent / "data" / "hellaswag_mini.jsonl"
    items = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            endings = [str(e) for e in raw["endings"]]
            label = int(raw["label"])
        except (ValueError, KeyError, TypeError) as err:
            raise HarnessError(f"{path}:{i}: bad item ({err})",
                               fix="Each line needs activity_label, ctx, endings (4) and label.") from None
        if len(endings) != 4 or not 0 <= label < 4:
            raise HarnessError(f"{path}:{i}: needs 4 endings and a label 0-3",
                               fix="Fix the bundled file.")
        items.append({
            "id": raw.get("id", f"hs{i}"),
            "query": _hellaswag_preprocess(f"{raw.get('activity_label', '')}: {raw['ctx']}"),
            "choices": [_hellaswag_preprocess(e) for e in endings],
            "gold": label,
        })
    return items


def _dedupe(items: list[dict], key: Callable[[dict], Any]) -> tuple[list[dict], int]:
    seen: set = set()
    out = []
    for it in items:
        k = key(it)
        if k in seen:
            continue
        seen.add(k)
        out.append(it)
    return out, len(items) - len(out)


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _atomic_write(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    write_text(path, data.decode("utf-8"))


def _write_mini(root: Path, name: str, items: list[dict], yaml_template: str, source: str,
                n_parsed: int, duplicates: int, skipped: dict[str, int]) -> MiniInfo:
    lo, hi = _EXPECTED_COUNTS[name]
    if not lo <= len(items) <= hi:
        raise HarnessError(
            f"built {len(items)} items for {name} from {source} (expected {lo}-{hi})",
            where="offline minis",
            fix=f"The installed lm-eval ({lm_eval_version()}) changed its bundled prompts; "
                "install lm-eval 0.4.x or use hub benchmarks.",
        )
    for it in items:
        ch = it["choices"]
        gold = it.get("answer", it.get("gold"))
        if len(ch) != 4 or not isinstance(gold, int) or not 0 <= gold < 4:
            raise HarnessError(f"{name}: item {it} has no 4 choices with a valid gold", where="offline minis")
    folder = root / "benchmarks" / name
    data_file = folder / "test.jsonl"
    data = "".join(json.dumps({"doc_index": i, **it}, ensure_ascii=False) + "\n" for i, it in enumerate(items))
    data_bytes = data.encode("utf-8")
    task_hash = hashlib.sha256(yaml_template.encode("utf-8") + b"\0" + data_bytes).hexdigest()[:16]
    yaml_text = yaml_template.replace(_DATA_PLACEHOLDER, _yaml_str(str(data_file.resolve())))
    _atomic_write(data_file, data_bytes)
    task_yaml = folder / f"{name}.yaml"
    _atomic_write(task_yaml, yaml_text.encode("utf-8"))
    return MiniInfo(name=name, task_yaml=str(task_yaml), data_file=str(data_file), n=len(items),
                    task_hash=task_hash, source=source, n_parsed=n_parsed, duplicates=duplicates,
                    skipped=skipped)


def build_minis(root: str | Path | None = None, names: Sequence[str] = MINI_NAMES) -> dict[str, MiniInfo]:
    """Build (or refresh) the offline minis under ``<root>/benchmarks/<name>/``.

    Idempotent: files are rewritten only when their content changes. Raises HarnessError when
    the installed lm-eval no longer ships the expected questions.
    """
    root = Path(root) if root is not None else cache_dir()
    try:
        return _build_minis(root, names)
    except OSError as err:
        raise HarnessError(f"cannot write the offline minis under {root}/benchmarks ({err.strerror or err})",
                           where="offline minis",
                           fix="Set HARNESS_CACHE to a writable folder.") from None


def _build_minis(root: Path, names: Sequence[str]) -> dict[str, MiniInfo]:
    out: dict[str, MiniInfo] = {}
    for name in names:
        if name == "mmlu-mini":
            rel = "tasks/mmlu/flan_cot_fewshot/_cot_prompts.json"
            parsed, skipped = parse_mmlu_cot_prompts(json.loads(_source_file(rel).read_text(encoding="utf-8")))
            items, dups = _dedupe(parsed, lambda it: (it["question"], tuple(it["choices"])))
            tmpl = _MC_YAML.format(
                name=name, data=_DATA_PLACEHOLDER,
                description=_yaml_str(
                    "The following are multiple choice questions (with answers) about "
                    "{{subject.replace('_', ' ')}}.\n\n"),
                doc_to_text=_yaml_str(
                    "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\n"
                    "C. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"),
                source=_yaml_str(f"lm_eval/{rel}"),
            )
            out[name] = _write_mini(root, name, items, tmpl, f"lm_eval/{rel}", len(parsed), dups, skipped)
        elif name == "kmmlu-mini":
            rel = "tasks/kmmlu/cot_hard"
            paths = sorted(glob.glob(str(_lm_eval_dir() / rel / "kmmlu_cot_hard_*.yaml")))
            if not paths:
                _source_file(f"{rel}/kmmlu_cot_hard_accounting.yaml")  # raises the HarnessError
            parsed, skipped = parse_kmmlu_cot_yaml([Path(p) for p in paths])
            items, dups = _dedupe(parsed, lambda it: (it["question"], tuple(it["choices"])))
            tmpl = _MC_YAML.format(
                name=name, data=_DATA_PLACEHOLDER, description='""',
                # lm-eval's kmmlu template (full-width colon after 정답, as upstream)
                doc_to_text=_yaml_str(
                    "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\n"
                    "C. {{choices[2]}}\nD. {{choices[3]}}\n정답："),
                source=_yaml_str(f"lm_eval/{rel}/kmmlu_cot_hard_*.yaml"),
            )
            out[name] = _write_mini(root, name, items, tmpl, f"lm_eval/{rel}/kmmlu_cot_hard_*.yaml",
                                    len(parsed), dups, skipped)
        elif name == "hellaswag-mini":
            parsed = load_hellaswag_items()
            items, dups = _dedupe(parsed, lambda it: (it["query"], tuple(it["choices"])))
            tmpl = _HELLASWAG_YAML.format(name=name, data=_DATA_PLACEHOLDER,
                                          source=_yaml_str("harness/data/hellaswag_mini.jsonl"))
            out[name] = _write_mini(root, name, items, tmpl, "harness/data/hellaswag_mini.jsonl",
                                    len(parsed), dups, {})
        else:
            raise HarnessError(f"no offline mini called {name!r}", fix=f"Use one of: {', '.join(MINI_NAMES)}.")
    return out


# --------------------------------------------------------------------------- results


@dataclass
class BenchmarkResult:
    """One model on one benchmark (an lm-eval task or group)."""

    name: str
    model: str
    metrics: dict[str, MetricValue]  # acc, acc_norm: lm-eval value + stderr, our bootstrap CI
    samples: list[dict]  # per-question records (see ``_sample_record``)
    n: int
    num_fewshot: int
    limit: int | None
    task_hash: str
    lm_eval_version: str
    apply_chat_template: bool = False
    subtasks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lm_eval_raw: dict[str, Any] = field(default_factory=dict)  # lm-eval's results entry as reported

    def per_sample(self, metric: str = "acc") -> dict[str, float | None]:
        """``{"<subtask>/<doc_id>": 0/1}`` for pairing samples across models."""
        return {f"{s['task']}/{s['doc_id']}": s.get(metric) for s in self.samples}

    def to_dict(self, with_samples: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {k: v.to_dict() for k, v in self.metrics.items()}
        if not with_samples:
            d.pop("samples")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], samples: list[dict] | None = None) -> BenchmarkResult:
        d = dict(data)
        d["metrics"] = {k: MetricValue.from_dict(v) for k, v in d.get("metrics", {}).items()}
        d["samples"] = samples if samples is not None else d.get("samples", [])
        return cls(**d)


def _short(text: Any, n: int = _QUESTION_CHARS) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _sample_record(task: str, s: dict) -> dict:
    """lm-eval's logged sample -> our per-question record."""
    import math

    doc = s.get("doc") or {}
    args = s.get("arguments") or []
    # multiple_choice: one (context, continuation) request per choice; resps hold (ll, is_greedy)
    lls: list[float] = []
    response = None
    for r in s.get("filtered_resps") or s.get("resps") or []:
        v = r[0] if isinstance(r, (list, tuple)) and r else r
        v = v[0] if isinstance(v, (list, tuple)) and v else v
        if isinstance(v, str):  # generate_until: the (filtered) model output
            response = v
            break
        try:
            lls.append(float(v))
        except (TypeError, ValueError):
            break
    choices = [a[1] for a in args if isinstance(a, (list, tuple)) and len(a) > 1 and isinstance(a[1], str)]
    question = next((doc[k] for k in ("question", "query", "ctx", "sentence", "text", "premise") if k in doc), None)
    if question is None and args:
        question = args[0][0] if isinstance(args[0], (list, tuple)) else args[0]
    pred = max(range(len(lls)), key=lambda i: lls[i]) if lls else None
    target = s.get("target")
    gold: Any = target
    if lls:  # multiple choice: the index of the right choice
        try:
            gold = int(target)
        except (TypeError, ValueError):
            pass
    rec = {
        "task": task,
        "doc_id": s.get("doc_id"),
        "question": _short(question or ""),
        "choices": [c.strip() for c in choices],
        "loglikelihoods": [None if math.isnan(x) else round(x, 6) for x in lls],
        "pred": pred,
        "gold": gold,
    }
    if response is not None:
        rec["response"] = _short(response, 500)
    options = doc.get("choices") if isinstance(doc, dict) else None
    if (isinstance(options, list) and len(options) == len(choices)
            and [str(o).strip() for o in options] != rec["choices"]):
        rec["options"] = [_short(o, 120) for o in options]  # e.g. MMLU: the texts behind A-D
    for m in ("acc", "acc_norm", "exact_match"):
        if m in s and s[m] is not None:
            rec[m] = float(s[m])
    return rec


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
    """Cheap look at lm-eval's task YAMLs (~2 s, cached): the names declared by
    ``task:``/``group:``/``tag:`` and every name-like token, so that an unknown name fails
    fast without building lm-eval's task index."""
    global _SCAN
    if _SCAN is not None:
        return _SCAN
    names: set[str] = set()
    tokens: set[str] = set()
    decl = re.compile(r"^\s*(?:-\s*)?(?:task|group|tag)\s*:\s*['\"]?([A-Za-z0-9_.\-]+)", re.MULTILINE)
    token = re.compile(r"[A-Za-z0-9_.\-]+")
    for p in (_lm_eval_dir() / "tasks").rglob("*.yaml"):
        try:
            t = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        names.update(decl.findall(t))
        tokens.update(token.findall(t))
    _SCAN = (frozenset(names), frozenset(tokens))
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


def _leaf_tasks(results: dict, name: str) -> list[str]:
    samples = results.get("samples") or {}
    if name in samples:
        return [name]
    leaves = []
    group_subtasks = results.get("group_subtasks") or {}

    def walk(n: str) -> None:
        for sub in group_subtasks.get(n, []):
            if sub in samples:
                leaves.append(sub)
            else:
                walk(sub)

    walk(name)
    return leaves or sorted(samples)


def _hash_config(configs: dict, leaves: Sequence[str], samples: list[dict]) -> str:
    h = hashlib.sha256()
    for t in sorted(leaves):
        h.update(json.dumps(configs.get(t, {}), sort_keys=True, default=str, ensure_ascii=False).encode())
    for s in samples:
        h.update(json.dumps([s["task"], s["doc_id"], s["choices"], s["gold"]], ensure_ascii=False,
                            default=str).encode())
    return h.hexdigest()[:16]


def _batch_size(bs: int | str, model) -> int | str:
    if bs == "auto":
        dev = getattr(model, "device", None)
        if dev is None or getattr(dev, "type", "cpu") == "cpu":
            return 16  # auto-detection probes huge batches; pointless (and slow) on a CPU
    return bs


def run_benchmarks(
    model,
    tokenizer,
    specs: Sequence,
    model_name: str,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    task_dirs: Sequence[str | Path] = (),
    minis_root: str | Path | None = None,
    n_resamples: int = 1000,
) -> dict[str, BenchmarkResult]:
    """Run lm-eval benchmarks on an already-loaded model.

    ``model`` is a transformers model or a PeftModel with the wanted adapter active (lm-eval
    uses it as is). ``specs`` are ``BenchmarkSpec``s (name, num_fewshot, limit, batch_size,
    apply_chat_template). ``task_dirs`` are extra folders of lm-eval task YAMLs. Returns
    ``{spec.name: BenchmarkResult}``.
    """
    import logging

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

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

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    # Specs with the same settings go through one simple_evaluate call, as the lm_eval CLI does
    # with --tasks a,b,c: one request pool sorted by length, so batches (and numbers) match it.
    groups: dict[tuple, list] = {}
    for spec in specs:
        bs = _batch_size(spec.batch_size, model)
        groups.setdefault((spec.num_fewshot, spec.limit, bool(spec.apply_chat_template), bs), []).append(spec)
    lms: dict[Any, Any] = {}
    results: dict[str, BenchmarkResult] = {}
    for (fewshot, limit, chat, bs), group in groups.items():
        if bs not in lms:
            lms[bs] = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=bs)
        task_names = [s.name for s in group]
        if log:
            log(f"{model_name}: {', '.join(task_names)} (fewshot {fewshot}, limit {limit})")
        t0 = time.perf_counter()
        try:
            res = simple_evaluate(
                model=lms[bs],
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
                    f"{what}: its dataset cannot be loaded offline ({type(err).__name__}: {_short(err, 160)})",
                    where="benchmarks",
                    fix="It needs the Hugging Face hub (unset HF_DATASETS_OFFLINE / HF_HUB_OFFLINE, or "
                        f"pre-download it); offline, use the minis: {', '.join(MINI_NAMES)}.",
                ) from err
            raise
        seconds = (time.perf_counter() - t0) / len(group)  # shared call: an even share each
        for spec in group:
            results[spec.name] = _to_result(res, spec, model_name, minis.get(spec.name), version, seconds,
                                            seed, n_resamples)
    out = {s.name: results[s.name] for s in specs}
    return out


def _to_result(res: dict, spec, model_name: str, mini: MiniInfo | None, version: str,
               seconds: float, seed: int, n_resamples: int) -> BenchmarkResult:
    from harness.metrics.stats import aggregate

    name = spec.name
    leaves = _leaf_tasks(res, name)
    samples: list[dict] = []
    for t in leaves:
        for s in sorted(res["samples"].get(t, []), key=lambda s: s["doc_id"]):
            samples.append(_sample_record(t, s))
    entry = (res.get("results") or {}).get(name) or (res.get("groups") or {}).get(name) or {}
    metrics: dict[str, MetricValue] = {}
    for m in ("acc", "acc_norm", "exact_match"):
        per = [s.get(m) for s in samples]
        if not samples or all(v is None for v in per):
            continue
        mv = aggregate(per, higher_is_better=True, seed=seed, n_resamples=n_resamples)
        key = next((k for k in entry if k.split(",")[0] == m), None)
        if key is not None and isinstance(entry[key], (int, float)):
            mv.value = float(entry[key])
            skey = key.replace(m, f"{m}_stderr", 1)
            se = entry.get(skey)
            mv.stderr = float(se) if isinstance(se, (int, float)) else mv.stderr
        metrics[m] = mv
    raw = {k: v for k, v in entry.items() if isinstance(v, (int, float, str))}
    task_hash = mini.task_hash if mini is not None else _hash_config(res.get("configs") or {}, leaves, samples)
    return BenchmarkResult(
        name=name, model=model_name, metrics=metrics, samples=samples, n=len(samples),
        num_fewshot=spec.num_fewshot, limit=spec.limit, task_hash=task_hash, lm_eval_version=version,
        apply_chat_template=bool(spec.apply_chat_template), subtasks=leaves if leaves != [name] else [],
        seconds=round(seconds, 3), lm_eval_raw=raw,
    )


def benchmark_group(results_by_model: dict[str, BenchmarkResult], models_order: Sequence[str] | None = None,
                    seed: int = 0, n_resamples: int = 1000) -> dict[str, Any]:
    """The scores.json group of one benchmark: metrics per model, paired McNemar tests on
    per-sample correctness (samples both models have) between every pair, in order."""
    from harness.metrics.stats import compare_models, model_pairs

    order = [m for m in (models_order or list(results_by_model)) if m in results_by_model]
    if not order:
        raise HarnessError("no benchmark results to group", where="benchmarks")
    first = results_by_model[order[0]]
    metrics_all = sorted({k for r in results_by_model.values() for k in r.metrics})
    paired = []
    for metric in metrics_all:
        per_model_map = {m: results_by_model[m].per_sample(metric) for m in order
                         if metric in results_by_model[m].metrics}
        for a, b in model_pairs(per_model_map):  # later a vs earlier b, on the questions both have
            keys = sorted(set(per_model_map[a]) & set(per_model_map[b]))
            pair = {b: [per_model_map[b][k] for k in keys], a: [per_model_map[a][k] for k in keys]}
            paired += [t.to_dict() for t in compare_models(pair, metric, binary=True,
                                                           n_resamples=n_resamples, seed=seed)]
    hashes = {m: results_by_model[m].task_hash for m in order}
    info = {
        "lm_eval_version": first.lm_eval_version,
        "task_hash": first.task_hash,
        "n": {m: results_by_model[m].n for m in order},
        "num_fewshot": first.num_fewshot,
        "limit": first.limit,
        "apply_chat_template": first.apply_chat_template,
        "seconds": {m: results_by_model[m].seconds for m in order},
    }
    if first.subtasks:
        info["subtasks"] = len(first.subtasks)
    if len(set(hashes.values())) > 1:
        info["task_hash_by_model"] = hashes  # models saw different questions: pairs use the shared ones
    return {
        "kind": "benchmark",
        "models": {m: {k: v.to_dict() for k, v in results_by_model[m].metrics.items()} for m in order},
        "paired": paired,
        "info": info,
    }
