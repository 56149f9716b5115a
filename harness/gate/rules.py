"""The gate rule grammar: rule strings and mappings as written in YAML -> ``CompareRule`` / ``DropRule``.

Rules (``gates:`` of harness.yaml or of a plain gate file; docs/gates.md has the full story)::

    gates:
      - "dpo.judge.reference-0-100 >= 60"                 # absolute
      - "sft.rougeL > base.rougeL"                        # relative between models
      - "dpo.judge >= sft.judge - 2"                      # relative with an offset
      - {rule: "sft.rougeL > base.rougeL", significant: true, name: sft-beats-base, max_missing_rate: 0.1}
      - {max_drop: {rougeL: 0.02, mmlu-mini.acc: 0.01}, baseline: main, significant: false}
      - {judge: {max_missing: 0.1, min_position_consistency: 0.7}}   # the judge's reliability card

Grammar of a rule string::

    rule  := score OP rhs
    OP    := ">=" | ">" | "<=" | "<" | "=="
    rhs   := NUMBER | score | score ("+" | "-") NUMBER      (spaces around + / -)
    score := MODEL "." METRIC | MODEL "." GROUP "." METRIC | MODEL "." GROUP

``load_gate_config`` reads the rules of a harness.yaml or a plain gate file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import io
from harness.errors import HarnessError

GRAMMAR = ("a rule is 'SCORE OP NUMBER' or 'SCORE OP SCORE [+|- NUMBER]' with OP one of >= > <= < ==, "
           "SCORE = model.metric or model.group.metric (e.g. 'sft.rougeL >= 0.30', "
           "'dpo.judge >= sft.judge - 2'), or a mapping {rule: ..., significant: true|false|required, "
           "name: ..., max_missing_rate: 0.1} or {max_drop: {METRIC: DROP, ...}, baseline: NAME, "
           "significant: ...} or {judge: {max_missing: 0.1, min_position_consistency: 0.7, ...}}; see docs/gates.md")

OPS = (">=", "<=", "==", ">", "<")
EPS = 1e-9  # tolerance of every comparison (== and the limits)
_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
_REF = r"[A-Za-z0-9_][^\s<>=!]*"
_RULE_RE = re.compile(rf"^\s*(?P<left>{_REF})\s*(?P<op>>=|<=|==|>|<)\s*(?P<right>.+?)\s*$")
_NUM_RE = re.compile(rf"^(?P<sign>[+-]?)\s*(?P<num>{_NUMBER})$")
_REF_RE = re.compile(rf"^(?P<ref>{_REF})(?:\s+(?P<sign>[+-])\s*(?P<num>{_NUMBER}))?$")
_RULE_KEYS = {"rule", "name", "significant", "max_missing_rate"}
_DROP_KEYS = {"max_drop", "baseline", "name", "significant", "max_missing_rate"}
_SIG_MODES = {False: "off", True: "lenient", "required": "required"}
# judge rule key -> (reliability card figure, the comparison the figure must pass)
JUDGE_LIMITS = {"max_missing": ("missing", "<="), "max_parse_failure": ("parse_failure", "<="),
                "min_position_consistency": ("position_consistency", ">="), "max_flip_rate": ("flip_rate", "<=")}


@dataclass(frozen=True)
class ScoreRef:
    """``model.rest`` as written in a rule; ``rest`` is ``metric``, ``group.metric`` or ``group``."""

    model: str
    rest: str

    @property
    def text(self) -> str:
        return f"{self.model}.{self.rest}"


@dataclass
class CompareRule:
    """``left OP right_ref + offset`` or ``left OP offset`` (``right_ref`` None)."""

    text: str
    left: ScoreRef
    op: str
    right_ref: ScoreRef | None
    offset: float
    significant: str = "off"  # off | lenient | required
    name: str | None = None
    max_missing_rate: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.text


@dataclass
class DropRule:
    """Every ``key: limit`` of ``max_drop`` against a stored baseline."""

    limits: dict[str, float]
    baseline: str | None = None
    significant: str = "off"
    name: str | None = None
    max_missing_rate: float | None = None

    @property
    def text(self) -> str:
        inner = ", ".join(f"{k}: {v:g}" for k, v in self.limits.items())
        return f"max_drop {{{inner}}} vs baseline {self.baseline or '(default)'}"

    @property
    def label(self) -> str:
        return self.name or self.text


@dataclass
class JudgeRule:
    """Bounds on figures of the judge's reliability card (scores.json ``judge_reliability``)."""

    limits: dict[str, float]
    name: str | None = None

    @property
    def text(self) -> str:
        return "judge {" + ", ".join(f"{k}: {v:g}" for k, v in self.limits.items()) + "}"

    @property
    def label(self) -> str:
        return self.name or self.text


Rule = CompareRule | DropRule | JudgeRule


def split_drop_key(key: str, models) -> tuple[str | None, str]:
    """A ``max_drop`` key -> (model or None for every model, the metric address): ``sft.rougeL``
    names one model when ``sft`` is a model, else the whole key is ``[group.]metric``."""
    first, _, tail = key.partition(".")
    return (first, tail) if tail and first in models else (None, key)


def _bad(rule: Any, why: str, where: str) -> HarnessError:
    return HarnessError(f"{where}: bad gate rule {rule!r}: {why}.", fix=f"Grammar: {GRAMMAR}.")


def _parse_ref(text: str, rule: Any, where: str) -> ScoreRef:
    model, dot, rest = text.partition(".")
    if not dot or not model or not rest or rest.startswith(".") or rest.endswith("."):
        raise _bad(rule, f"'{text}' is not model.metric or model.group.metric", where)
    return ScoreRef(model, rest)


def _parse_significant(value: Any, rule: Any, where: str) -> str:
    if isinstance(value, bool):
        return _SIG_MODES[value]
    if isinstance(value, str) and value.strip().lower() in ("required", "require", "strict"):
        return "required"
    raise _bad(rule, f"significant must be true, false or 'required' (got {value!r})", where)


def _parse_rate(value: Any, rule: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _bad(rule, f"max_missing_rate must be a number from 0 to 1 (got {value!r})", where)
    return float(value)


def parse_rule_string(text: str, *, where: str = "gates") -> CompareRule:
    """One rule string -> ``CompareRule``; HarnessError naming the rule and the grammar."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(text, "empty rule", where)
    m = _RULE_RE.match(text)
    if not m:
        raise _bad(text, "expected 'SCORE OP VALUE' with OP one of >= > <= < ==", where)
    left = _parse_ref(m["left"], text, where)
    right = m["right"]
    if any(op in right for op in ("<", ">", "=")):
        raise _bad(text, "only one comparison operator is allowed", where)
    num = _NUM_RE.match(right)
    if num:
        value = float(num["num"]) * (-1 if num["sign"] == "-" else 1)
        return CompareRule(text=text.strip(), left=left, op=m["op"], right_ref=None, offset=value)
    ref = _REF_RE.match(right)
    if not ref:
        raise _bad(text, f"right side '{right}' is not a number or 'model.metric [+|- number]' "
                         "(put spaces around + and -)", where)
    offset = float(ref["num"]) * (-1 if ref["sign"] == "-" else 1) if ref["num"] else 0.0
    return CompareRule(text=text.strip(), left=left, op=m["op"], right_ref=_parse_ref(ref["ref"], text, where),
                       offset=offset)


def parse_rule(item: Any, *, where: str = "gates") -> Rule:
    """A rule as written in YAML (string or mapping) -> ``CompareRule`` | ``DropRule``."""
    if isinstance(item, (CompareRule, DropRule, JudgeRule)):
        return item
    if isinstance(item, str):
        return parse_rule_string(item, where=where)
    if not isinstance(item, dict):
        raise _bad(item, f"expected a string or a mapping, got {type(item).__name__}", where)
    if "max_drop" in item:
        unknown = set(item) - _DROP_KEYS
        if unknown:
            raise _bad(item, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                             f"(allowed: {', '.join(sorted(_DROP_KEYS))})", where)
        limits = item["max_drop"]
        if not isinstance(limits, dict) or not limits:
            raise _bad(item, "max_drop must be a non-empty mapping {METRIC: DROP, ...}", where)
        clean: dict[str, float] = {}
        for key, val in limits.items():
            if not isinstance(key, str) or not key or key.startswith(".") or key.endswith(".") or " " in key:
                raise _bad(item, f"max_drop key {key!r} is not metric, group.metric or model[.group].metric", where)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
                raise _bad(item, f"max_drop.{key} must be a number >= 0 (got {val!r})", where)
            clean[key] = float(val)
        base = item.get("baseline")
        if base is not None and not isinstance(base, str):
            raise _bad(item, "baseline must be a name or a path", where)
        name = item.get("name")
        return DropRule(limits=clean, baseline=base, significant=_parse_significant(item.get("significant", False),
                                                                                     item, where),
                        name=str(name) if name is not None else None,
                        max_missing_rate=_parse_rate(item.get("max_missing_rate"), item, where))
    if "judge" in item:
        return _parse_judge(item, where)
    if "rule" not in item:
        raise _bad(item, "a mapping needs 'rule:', 'max_drop:' or 'judge:'", where)
    unknown = set(item) - _RULE_KEYS
    if unknown:
        raise _bad(item, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                         f"(allowed: {', '.join(sorted(_RULE_KEYS))})", where)
    rule = parse_rule_string(item["rule"], where=where)
    rule.significant = _parse_significant(item.get("significant", False), item, where)
    if rule.significant == "required" and rule.op == "==":
        raise _bad(item, "'==' cannot be required to hold significantly; use significant: true", where)
    name = item.get("name")
    rule.name = str(name) if name is not None else None
    rule.max_missing_rate = _parse_rate(item.get("max_missing_rate"), item, where)
    return rule


def _parse_judge(item: dict, where: str) -> JudgeRule:
    unknown = set(item) - {"judge", "name"}
    if unknown:
        raise _bad(item, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (allowed: judge, name)", where)
    limits = item["judge"]
    if not isinstance(limits, dict) or not limits:
        raise _bad(item, f"judge must be a non-empty mapping of {', '.join(JUDGE_LIMITS)}", where)
    clean: dict[str, float] = {}
    for key, val in limits.items():
        if key not in JUDGE_LIMITS:
            raise _bad(item, f"judge.{key} is not one of {', '.join(JUDGE_LIMITS)}", where)
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val <= 1:
            raise _bad(item, f"judge.{key} must be a number from 0 to 1 (got {val!r})", where)
        clean[key] = float(val)
    name = item.get("name")
    return JudgeRule(limits=clean, name=str(name) if name is not None else None)


def parse_rules(items: Iterable[Any] | None, *, where: str = "gates") -> list[Rule]:
    if items is None:
        return []
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise HarnessError(f"{where}: expected a list of rules, got {type(items).__name__}", fix=f"Grammar: {GRAMMAR}.")
    return [parse_rule(it, where=f"{where}[{i}]") for i, it in enumerate(items)]



# --------------------------------------------------------------------------- gate files


def load_gate_config(path: str | Path) -> tuple[list[Any], str | None, float | None, Path]:
    """``--config FILE``: a full harness.yaml (has ``models:``) or a plain gate file with
    ``gates:`` and optionally ``baseline:`` / ``max_missing_rate:``. Returns (rules, baseline,
    judge missing-rate default, folder of the file)."""
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"gate config not found: {p}", fix="Pass a harness.yaml or a YAML file with 'gates:'.")
    data = io.read_yaml(p, what="gate config")
    if isinstance(data, list):
        data = {"gates": data}
    if not isinstance(data, dict):
        raise HarnessError(f"{p}: expected a mapping with 'gates:'")
    if "models" in data:
        from harness.config import load_config

        cfg = load_config(p)
        rules, base, rate = cfg.gates, cfg.baseline, cfg.judge.max_missing_rate
    else:
        unknown = set(data) - {"gates", "baseline", "max_missing_rate"}
        if unknown:
            raise HarnessError(f"{p}: unknown key(s) {', '.join(sorted(map(str, unknown)))} in a gate file",
                               fix="A gate file has 'gates:' and optionally 'baseline:' and 'max_missing_rate:'.")
        rules, base, rate = data.get("gates"), data.get("baseline"), data.get("max_missing_rate")
        if base is not None and not isinstance(base, str):
            raise HarnessError(f"{p}: 'baseline' must be a name or a path")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
            raise HarnessError(f"{p}: 'max_missing_rate' must be a number from 0 to 1")
    if not rules:
        raise HarnessError(f"{p}: no 'gates:' rules", fix=f"Grammar: {GRAMMAR}.")
    parse_rules(rules, where=f"{p}: gates")  # fail early, naming the file
    return list(rules), base, rate, p.resolve().parent


def load_rules(path: str | Path) -> tuple[list[Any], str | None]:
    """The rules and default baseline of a harness.yaml or gate file (see load_gate_config)."""
    rules, base, _rate, _folder = load_gate_config(path)
    return rules, base
