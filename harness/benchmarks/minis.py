"""Offline mini benchmarks, built at run time from what the installed packages ship (no hub).

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
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import write_text

MINI_NAMES = ("mmlu-mini", "kmmlu-mini", "hellaswag-mini")
# (min, max) item counts accepted from the installed package; outside -> the package changed.
_EXPECTED_COUNTS = {"mmlu-mini": (200, 400), "kmmlu-mini": (150, 300), "hellaswag-mini": (30, 200)}
_DATA_PLACEHOLDER = "__DATA_FILE__"
_LETTERS = ("A", "B", "C", "D")

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
    from harness.env import cache_root

    return cache_root()


def lm_eval_dir() -> Path:
    """The installed lm_eval package folder (its task YAMLs and prompt files)."""
    try:
        import lm_eval
    except ImportError as err:  # pragma: no cover - lm-eval is a dependency
        raise HarnessError(f"lm-eval is not installed ({err})", fix="pip install 'lm-eval>=0.4.9'.") from None
    return Path(lm_eval.__file__).parent


def lm_eval_version() -> str:
    from harness.env import package_version

    return package_version("lm_eval") or "unknown"


def _source_file(rel: str) -> Path:
    p = lm_eval_dir() / rel
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
    path = path or Path(__file__).parents[1] / "data" / "hellaswag_mini.jsonl"
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
            paths = sorted(glob.glob(str(lm_eval_dir() / rel / "kmmlu_cot_hard_*.yaml")))
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
