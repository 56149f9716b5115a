"""LLM-as-judge: judge definitions (data in ``judges/``), concurrent cached judging with
retries and re-asks, and aggregation into the scores.json groups "judge" / "judge-pairwise".

Flow for one judged unit (item x repeat, or pair x order x repeat):
  render prompt (language of the sample) -> disk cache? -> backend.complete() with
  exponential-backoff retries on transport errors -> parse (JSON, then tolerant) ->
  re-ask with a correction message when unparseable -> cache only successes.
A unit that still fails becomes a missing verdict (score/winner None, raw replies and the
error kept), never 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import HarnessError
from harness.io import write_json
from harness.records import Verdict

from .backends import JudgeBackend, JudgeRequestError, TransientJudgeError
from .parse import Parsed, parse_preference, parse_score

__all__ = [
    "JudgeCache",
    "JudgeDefinition",
    "JudgeItem",
    "JudgeSpec",
    "PairItem",
    "available_judges",
    "count_missing",
    "default_cache_dir",
    "default_pairs",
    "items_from_samples",
    "judge_pairwise",
    "judge_pointwise",
    "load_judge",
    "pairs_from_samples",
    "summarize_pairwise",
    "summarize_pointwise",
]

Progress = Callable[[int, int], None]

# --------------------------------------------------------------------------------------
# Judge definitions
# --------------------------------------------------------------------------------------

_POINTWISE_VARS = {"question", "reference", "answer", "min", "max", "lang"}
_PAIRWISE_VARS = {"question", "reference", "answer_a", "answer_b", "lang"}

_DEFAULT_REASK = {
    "pointwise": "Your reply could not be read. Reply with only this JSON object and nothing else: "
    '{{"rationale": "<one or two sentences>", "score": <integer from {min} to {max}>}}',
    "pairwise": "Your reply could not be read. Reply with only this JSON object and nothing else: "
    '{{"rationale": "<short explanation>", "winner": "A" or "B" or "tie"}}',
}


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = 0
    max: int = 100

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        return self


class JudgeSpec(BaseModel):
    """The schema of ``judges/<name>/judge.yaml``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    kind: Literal["pointwise", "pairwise"]
    version: int = 1
    description: str = ""
    scale: Scale | None = None  # pointwise only
    reference: Literal["required", "optional", "unused"] = "optional"
    prompts: dict[str, str] = Field(min_length=1)  # language -> template file (relative)
    system: dict[str, str] = Field(default_factory=dict)  # language -> system message
    reask: dict[str, str] = Field(default_factory=dict)  # language -> correction message

    @model_validator(mode="after")
    def _kind_fields(self) -> JudgeSpec:
        if self.kind == "pointwise" and self.scale is None:
            raise ValueError("a pointwise judge needs scale: {min: .., max: ..}")
        if self.kind == "pairwise" and self.scale is not None:
            raise ValueError("a pairwise judge has no scale")
        return self


@dataclass
class JudgeDefinition:
    """A loaded judge: its spec, its prompt templates (source text) and a content hash."""

    spec: JudgeSpec
    templates: dict[str, str]
    path: Path
    hash: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def lo(self) -> int:
        return self.spec.scale.min if self.spec.scale else 0

    @property
    def hi(self) -> int:
        return self.spec.scale.max if self.spec.scale else 0

    def prompt_lang(self, lang: str) -> str:
        """The template language used for a sample in ``lang`` (falls back to en, then any)."""
        lang = (lang or "en").lower()
        if lang in self.templates:
            return lang
        base = lang.split("-")[0].split("_")[0]
        if base in self.templates:
            return base
        return "en" if "en" in self.templates else min(self.templates)

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the reply (rationale first, so the verdict follows the reasoning)."""
        if self.kind == "pointwise":
            return {
                "type": "object",
                "properties": {
                    "rationale": {"type": "string"},
                    "score": {"type": "integer", "minimum": self.lo, "maximum": self.hi},
                },
                "required": ["rationale", "score"],
                "additionalProperties": False,
            }
        return {
            "type": "object",
            "properties": {
                "rationale": {"type": "string"},
                "winner": {"type": "string", "enum": ["A", "B", "tie"]},
            },
            "required": ["rationale", "winner"],
            "additionalProperties": False,
        }

    def render(self, lang: str, **variables: Any) -> list[dict[str, str]]:
        """The chat messages for one judgement, in the sample's language."""
        from harness.templating import compile_template, render_template

        pl = self.prompt_lang(lang)
        where = str((self.path.parent / self.spec.prompts[pl]).resolve())
        tpl = compile_template(self.templates[pl], where, strict=True)
        user = render_template(tpl, where, lang=pl, min=self.lo, max=self.hi, **variables).strip()
        messages = []
        system = self.spec.system.get(pl) or self.spec.system.get("en")
        if system:
            messages.append({"role": "system", "content": system.strip()})
        messages.append({"role": "user", "content": user})
        return messages

    def reask_message(self, lang: str) -> str:
        pl = self.prompt_lang(lang)
        text = self.spec.reask.get(pl) or self.spec.reask.get("en")
        if text:
            return text.strip()
        return _DEFAULT_REASK[self.kind].format(min=self.lo, max=self.hi)


def _judge_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("HARNESS_JUDGES")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(Path.cwd() / "judges")
    dirs.append(Path(__file__).resolve().parents[2] / "judges")  # the repository's judges/
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def available_judges() -> list[str]:
    """Names of the judges found in HARNESS_JUDGES, ./judges and the repository's judges/."""
    names = set()
    for d in _judge_dirs():
        names.update(p.parent.name for p in d.glob("*/judge.yaml"))
    return sorted(names)


def load_judge(name_or_path: str | os.PathLike) -> JudgeDefinition:
    """Load a judge by name (``judges/<name>/judge.yaml``) or from a directory / YAML path."""
    import yaml

    p = Path(name_or_path)
    if p.is_dir() and (p / "judge.yaml").is_file():
        yaml_path = p / "judge.yaml"
    elif p.is_file():
        yaml_path = p
    else:
        yaml_path = None
        for d in _judge_dirs():
            cand = d / str(name_or_path) / "judge.yaml"
            if cand.is_file():
                yaml_path = cand
                break
        if yaml_path is None:
            have = ", ".join(available_judges()) or "none found"
            raise HarnessError(
                f"judge '{name_or_path}' not found (available: {have})",
                fix="Name one of those or pass a directory containing judge.yaml.",
            )
    text = yaml_path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{yaml_path}:{mark.line + 1}" if mark else str(yaml_path)
        raise HarnessError(
            f"{where}: invalid YAML: {getattr(e, 'problem', e)}", fix="Fix the YAML syntax."
        ) from None
    if not isinstance(data, dict):
        raise HarnessError(f"{yaml_path}: expected a mapping of judge fields, got {type(data).__name__}")
    try:
        spec = JudgeSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise HarnessError(
            f"{yaml_path}: field '{loc}': {err['msg']}",
            fix="See judges/reference-0-100/judge.yaml for the expected fields.",
        ) from None

    import jinja2
    from jinja2 import meta

    from harness.templating import compile_template, render_template, sandboxed_env

    allowed = _POINTWISE_VARS if spec.kind == "pointwise" else _PAIRWISE_VARS
    needed = {"answer"} if spec.kind == "pointwise" else {"answer_a", "answer_b"}
    if spec.reference == "required":
        needed.add("reference")
    templates: dict[str, str] = {}
    for lang, rel in spec.prompts.items():
        tpath = (yaml_path.parent / rel).resolve()
        if not tpath.is_file():
            raise HarnessError(f"{yaml_path}: field 'prompts.{lang}': template file {tpath} not found")
        src = tpath.read_text(encoding="utf-8")
        try:
            used = meta.find_undeclared_variables(sandboxed_env(strict=True).parse(src))
        except jinja2.TemplateSyntaxError as e:
            raise HarnessError(f"{tpath}:{e.lineno}: template syntax error: {e.message}") from None
        unknown = used - allowed
        if unknown:
            raise HarnessError(
                f"{tpath}: unknown template variable(s) {sorted(unknown)}",
                fix=f"A {spec.kind} judge template may use {sorted(allowed)}.",
            )
        missing = needed - used
        if missing:
            raise HarnessError(
                f"{tpath}: the template never shows {sorted(missing)}",
                fix="Add {{ " + min(missing) + " }} to the prompt.",
            )
        templates[lang] = src
    # render each template once with stand-in values: a template the sandbox blocks fails here,
    # before any model loads or any request is sent
    for lang, src in templates.items():
        where = str((yaml_path.parent / spec.prompts[lang]).resolve())
        render_template(compile_template(src, where, strict=True), where, lang=lang, min=0, max=1,
                        **{v: "x" for v in allowed - {"lang", "min", "max"}})
    canon = json.dumps(
        {"spec": spec.model_dump(), "templates": templates}, sort_keys=True, ensure_ascii=False
    )
    digest = hashlib.sha256(canon.encode("utf-8")).hexdigest()
    return JudgeDefinition(spec=spec, templates=templates, path=yaml_path, hash=digest)


# --------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------


@dataclass
class JudgeItem:
    """One answer to grade (pointwise)."""

    id: str
    task: str
    model: str
    lang: str = "en"
    question: str = ""  # instruction + input
    reference: str = ""
    answer: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairItem:
    """Two models' answers to the same item (pairwise): does ``model_a`` beat ``model_b``?"""

    id: str
    task: str
    model_a: str
    answer_a: str
    model_b: str
    answer_b: str
    lang: str = "en"
    question: str = ""
    reference: str = ""


def _question(sample) -> str:
    parts = [sample.instruction.strip(), sample.input.strip()]
    return "\n\n".join(p for p in parts if p) or sample.prompt


def items_from_samples(samples: Iterable) -> list[JudgeItem]:
    """JudgeItems from harness Samples (question = instruction + input)."""
    return [
        JudgeItem(
            id=s.id,
            task=s.task,
            model=s.model,
            lang=s.lang or "en",
            question=_question(s),
            reference=s.reference,
            answer=s.response,
        )
        for s in samples
    ]


def default_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """Each later model against each earlier one, neighbours first:
    [base, sft, dpo] -> [(sft, base), (dpo, sft), (dpo, base)]."""
    from harness.metrics.stats import model_pairs

    models = list(models)
    return sorted(model_pairs(models), key=lambda p: (models.index(p[0]) - models.index(p[1]), models.index(p[0])))


def pairs_from_samples(
    samples_by_model: dict[str, Iterable], pairs: Sequence[tuple[str, str]] | None = None
) -> list[PairItem]:
    """PairItems for the items (same task and id) that both models of each pair answered."""
    indexed = {m: {(s.task, s.id): s for s in ss} for m, ss in samples_by_model.items()}
    pairs = list(pairs) if pairs is not None else default_pairs(list(samples_by_model))
    out: list[PairItem] = []
    for a, b in pairs:
        if a not in indexed or b not in indexed:
            raise HarnessError(f"pairwise judge: no samples for model '{a if a not in indexed else b}'")
        for key, sa in indexed[a].items():
            sb = indexed[b].get(key)
            if sb is None:
                continue
            out.append(
                PairItem(
                    id=sa.id,
                    task=sa.task,
                    model_a=a,
                    answer_a=sa.response,
                    model_b=b,
                    answer_b=sb.response,
                    lang=sa.lang or "en",
                    question=_question(sa),
                    reference=sa.reference,
                )
            )
    return out


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    root = os.environ.get("HARNESS_CACHE") or os.path.join("~", ".cache", "harness")
    return Path(root).expanduser() / "judge"


class JudgeCache:
    """One JSON file per key under ``root/<key[:2]>/<key>.json``; writes are atomic."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.writes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(defn: JudgeDefinition, backend: JudgeBackend, messages: list, seed: int | None) -> str:
        payload = {
            "judge": defn.hash,
            "spec": backend.spec,
            "identity": backend.identity(seed),
            "messages": messages,
            "schema": defn.schema(),
        }
        canon = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self._path(key)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("value") is None:
            return None
        with self._lock:
            self.hits += 1
        return data

    def put(self, key: str, data: dict) -> None:
        p = self._path(key)
        try:
            write_json(p, data, indent=None)
        except OSError as e:
            raise HarnessError(
                f"cannot write the judge cache at {self.root}: {e.strerror or e}",
                fix="Set HARNESS_CACHE to a writable directory.",
            ) from None
        with self._lock:
            self.writes += 1


# --------------------------------------------------------------------------------------
# Asking
# --------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    value: float | str | None
    rationale: str = ""
    raws: list[str] = field(default_factory=list)
    error: str | None = None
    requests: int = 0
    cached: bool = False
    how: str = ""


class _Asker:
    def __init__(
        self,
        defn: JudgeDefinition,
        backend: JudgeBackend,
        cache: JudgeCache | None,
        retries: int,
        reasks: int,
        backoff: float,
        max_backoff: float,
        give_up_after: int = 0,
    ):
        self.defn = defn
        self.backend = backend
        self.cache = cache
        self.retries = max(0, int(retries))
        self.reasks = max(0, int(reasks))
        self.backoff = max(0.0, float(backoff))
        self.max_backoff = float(max_backoff)
        self.schema = defn.schema()
        self._lock = threading.Lock()
        self.requests = 0
        # circuit breaker: after this many units in a row failed in transport (no success in
        # between), the remaining units are not sent (the server is gone); 0 = never
        self.give_up_after = int(give_up_after)
        self._failed_in_row = 0
        self._last_transport_error = ""

    def _parse(self, text: str) -> Parsed:
        if self.defn.kind == "pointwise":
            return parse_score(text, self.defn.lo, self.defn.hi)
        return parse_preference(text)

    def _complete(self, convo: list[dict], seed: int) -> tuple[str | None, int, str | None, bool]:
        """(reply, requests made, error, failed in transport). Transport errors are retried
        with exponential backoff."""
        for attempt in range(self.retries + 1):
            n = attempt + 1
            with self._lock:
                self.requests += 1
            try:
                return self.backend.complete(convo, self.schema, seed=seed), n, None, False
            except TransientJudgeError as e:
                if attempt == self.retries:
                    return None, n, f"{e} (gave up after {n} tries)", True
                time.sleep(min(self.backoff * (2**attempt), self.max_backoff))
            except JudgeRequestError as e:
                return None, n, str(e), False
        raise AssertionError("unreachable")

    def _note(self, transport_error: str | None) -> None:
        with self._lock:
            if transport_error is None:
                self._failed_in_row = 0
            else:
                self._failed_in_row += 1
                self._last_transport_error = transport_error

    def _tripped(self) -> str | None:
        with self._lock:
            if self.give_up_after and self._failed_in_row >= self.give_up_after:
                return (
                    f"not sent: the judge failed {self._failed_in_row} times in a row "
                    f"(last: {self._last_transport_error})"
                )
        return None

    def ask(self, messages: list[dict], lang: str, seed: int) -> _Outcome:
        key = None
        if self.cache is not None:
            key = self.cache.key(self.defn, self.backend, messages, seed)
            hit = self.cache.get(key)
            if hit is not None:
                return _Outcome(
                    hit["value"],
                    hit.get("rationale", ""),
                    [hit.get("raw", "")],
                    None,
                    0,
                    True,
                    hit.get("how", ""),
                )
        convo = list(messages)
        raws: list[str] = []
        requests = 0
        last_error = None
        for _ in range(self.reasks + 1):
            tripped = self._tripped()
            if tripped:
                return _Outcome(None, "", raws, tripped, requests)
            text, n, err, transport = self._complete(convo, seed)
            requests += n
            self._note(err if transport else None)
            if text is None:
                return _Outcome(None, "", raws, err, requests)
            raws.append(text)
            parsed = self._parse(text)
            if parsed.ok:
                if key is not None:
                    self.cache.put(
                        key,
                        {
                            "value": parsed.value,
                            "rationale": parsed.rationale,
                            "raw": text,
                            "how": parsed.how,
                            "judge": self.defn.name,
                            "backend": self.backend.spec,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        },
                    )
                return _Outcome(parsed.value, parsed.rationale, raws, None, requests, False, parsed.how)
            last_error = parsed.error
            convo = convo + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": self.defn.reask_message(lang)},
            ]
        return _Outcome(None, "", raws, f"unparseable after {len(raws)} replies: {last_error}", requests)


def _run_units(units: list, fn: Callable, concurrency: int, progress: Progress | None) -> list:
    """fn(unit) for every unit on a thread pool; results in unit order; progress on this thread."""
    total = len(units)
    results: list = [None] * total
    if progress:
        progress(0, total)
    if total == 0:
        return results
    workers = max(1, min(int(concurrency), total))
    if workers == 1:
        for i, u in enumerate(units):
            results[i] = fn(u)
            if progress:
                progress(i + 1, total)
        return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
        futures = {pool.submit(fn, u): i for i, u in enumerate(units)}
        for done, fut in enumerate(as_completed(futures), start=1):
            results[futures[fut]] = fut.result()
            if progress:
                progress(done, total)
    return results


def _check_args(defn: JudgeDefinition, kind: str, backend, concurrency: int, repeats: int) -> None:
    if defn.kind != kind:
        raise HarnessError(
            f"judge '{defn.name}' is {defn.kind}, not {kind}",
            fix=f"Use judge_{defn.kind}() for it, or pick a {kind} judge.",
        )
    if backend is None:
        raise HarnessError(
            "no judge backend (--judge none)", fix="Pass --judge ollama:<model> or openai:<model>."
        )
    if concurrency < 1 or repeats < 1:
        raise HarnessError(f"judge concurrency and repeats must be >= 1 (got {concurrency}, {repeats})")


def _give_up(give_up_after: int | None, concurrency: int) -> int:
    return max(8, 2 * int(concurrency)) if give_up_after is None else int(give_up_after)


def _seed_of(backend, r: int) -> int:
    return int(getattr(backend, "seed", 0) or 0) + r


def judge_pointwise(
    defn: JudgeDefinition,
    backend: JudgeBackend,
    items: Sequence[JudgeItem],
    cache_dir: str | os.PathLike | None = None,
    concurrency: int = 4,
    retries: int = 2,
    repeats: int = 1,
    progress: Progress | None = None,
    *,
    reasks: int = 1,
    backoff: float = 1.0,
    max_backoff: float = 30.0,
    use_cache: bool = True,
    give_up_after: int | None = None,
) -> list[Verdict]:
    """Grade every item; one Verdict per item, in order.

    retries: extra tries per request on transport errors (backoff * 2**i seconds between);
    reasks: extra questions when a reply cannot be parsed; repeats: k judgements with seeds
    seed..seed+k-1, the median kept and max-min stored as ``spread``. cache_dir None ->
    ``default_cache_dir()``; ``use_cache=False`` disables it. give_up_after: once that many
    units in a row failed in transport (after their retries), the rest are not sent and come
    back missing (None -> max(8, 2 * concurrency); 0 = never). A verdict that fails is
    missing: ``score=None`` with ``error`` and ``raw`` set.
    """
    _check_args(defn, "pointwise", backend, concurrency, repeats)
    cache = JudgeCache(cache_dir) if use_cache else None
    asker = _Asker(
        defn, backend, cache, retries, reasks, backoff, max_backoff, _give_up(give_up_after, concurrency)
    )

    prepared: list[tuple[list[dict] | None, str | None]] = []
    for it in items:
        if defn.spec.reference == "required" and not (it.reference or "").strip():
            prepared.append((None, f"judge '{defn.name}' needs a reference answer and item has none"))
            continue
        ref = it.reference if defn.spec.reference != "unused" else ""
        prepared.append((defn.render(it.lang, question=it.question, reference=ref, answer=it.answer), None))

    units = [(i, r) for i, (msgs, _) in enumerate(prepared) if msgs is not None for r in range(repeats)]

    def work(unit):
        i, r = unit
        return asker.ask(prepared[i][0], items[i].lang, _seed_of(backend, r))

    outcomes = dict(zip(units, _run_units(units, work, concurrency, progress)))

    verdicts = []
    for i, it in enumerate(items):
        msgs, pre_error = prepared[i]
        base_meta = {
            "lang": it.lang,
            "prompt_lang": defn.prompt_lang(it.lang),
            "backend": backend.spec,
            "judge_hash": defn.hash[:16],
        }
        if msgs is None:
            verdicts.append(
                Verdict(
                    id=it.id, task=it.task, model=it.model, judge=defn.name, error=pre_error, meta=base_meta
                )
            )
            continue
        outs = [outcomes[(i, r)] for r in range(repeats)]
        verdicts.append(_pointwise_verdict(defn, it, outs, base_meta))
    return verdicts


def _join_raws(outs: Sequence[_Outcome]) -> str:
    parts = []
    for o in outs:
        parts.extend(o.raws)
    return "\n\n---\n\n".join(parts)


def _pointwise_verdict(defn: JudgeDefinition, it: JudgeItem, outs: list[_Outcome], meta: dict) -> Verdict:
    ok = [o for o in outs if o.value is not None]
    meta = dict(meta)
    meta["requests"] = sum(o.requests for o in outs)
    meta["cached"] = all(o.cached for o in outs)
    meta["parse"] = sorted({o.how for o in ok})
    errors = [o.error for o in outs if o.error]
    if len(outs) > 1:
        meta["repeats"] = len(outs)
        meta["scores"] = [o.value for o in outs]
    if not ok:
        return Verdict(
            id=it.id,
            task=it.task,
            model=it.model,
            judge=defn.name,
            score=None,
            raw=_join_raws(outs),
            error="; ".join(dict.fromkeys(errors)) or "no verdict",
            meta=meta,
        )
    values = [float(o.value) for o in ok]
    score = float(statistics.median(values))
    closest = min(ok, key=lambda o: abs(float(o.value) - score))
    if errors:
        meta["repeat_errors"] = errors
    return Verdict(
        id=it.id,
        task=it.task,
        model=it.model,
        judge=defn.name,
        score=score,
        rationale=closest.rationale,
        raw=_join_raws(outs),
        spread=(max(values) - min(values)) if len(outs) > 1 else None,
        meta=meta,
    )


def _majority(choices: list[str]) -> str:
    counts = {c: choices.count(c) for c in set(choices)}
    best = max(counts.values())
    top = [c for c, n in counts.items() if n == best]
    return top[0] if len(top) == 1 else "tie"


def judge_pairwise(
    defn: JudgeDefinition,
    backend: JudgeBackend,
    pairs: Sequence[PairItem],
    cache_dir: str | os.PathLike | None = None,
    concurrency: int = 4,
    retries: int = 2,
    repeats: int = 1,
    progress: Progress | None = None,
    *,
    reasks: int = 1,
    backoff: float = 1.0,
    max_backoff: float = 30.0,
    use_cache: bool = True,
    give_up_after: int | None = None,
) -> list[Verdict]:
    """Compare ``model_a`` with ``model_b`` per item, in both orders (A/B swapped).

    One Verdict per pair item: ``model`` = "<a>_vs_<b>", ``winner`` = a, b, "tie", or None
    (missing: either order failed). When the two orders disagree the verdict is a tie and
    ``meta["consistent"]`` is False. With repeats k each order takes the majority of k.
    """
    _check_args(defn, "pairwise", backend, concurrency, repeats)
    cache = JudgeCache(cache_dir) if use_cache else None
    asker = _Asker(
        defn, backend, cache, retries, reasks, backoff, max_backoff, _give_up(give_up_after, concurrency)
    )

    prepared = []
    for p in pairs:
        ref = p.reference if defn.spec.reference != "unused" else ""
        if defn.spec.reference == "required" and not (ref or "").strip():
            prepared.append(None)
            continue
        prepared.append(
            {
                "ab": defn.render(
                    p.lang, question=p.question, reference=ref, answer_a=p.answer_a, answer_b=p.answer_b
                ),
                "ba": defn.render(
                    p.lang, question=p.question, reference=ref, answer_a=p.answer_b, answer_b=p.answer_a
                ),
            }
        )
    units = [
        (i, order, r)
        for i, msgs in enumerate(prepared)
        if msgs is not None
        for order in ("ab", "ba")
        for r in range(repeats)
    ]

    def work(unit):
        i, order, r = unit
        return asker.ask(prepared[i][order], pairs[i].lang, _seed_of(backend, r))

    outcomes = dict(zip(units, _run_units(units, work, concurrency, progress)))

    verdicts = []
    for i, p in enumerate(pairs):
        meta: dict[str, Any] = {
            "model_a": p.model_a,
            "model_b": p.model_b,
            "lang": p.lang,
            "prompt_lang": defn.prompt_lang(p.lang),
            "len_a": len(p.answer_a),
            "len_b": len(p.answer_b),
            "backend": backend.spec,
            "judge_hash": defn.hash[:16],
        }
        vid = {"id": p.id, "task": p.task, "model": f"{p.model_a}_vs_{p.model_b}", "judge": defn.name}
        if prepared[i] is None:
            verdicts.append(
                Verdict(
                    **vid, error=f"judge '{defn.name}' needs a reference answer and item has none", meta=meta
                )
            )
            continue
        per_order: dict[str, str | None] = {}
        letters: dict[str, str | None] = {}
        errors, raws, rationales = [], [], {}
        all_outs = []
        for order in ("ab", "ba"):
            outs = [outcomes[(i, order, r)] for r in range(repeats)]
            all_outs += outs
            ok = [o for o in outs if o.value is not None]
            label = f"[A={p.model_a}, B={p.model_b}]" if order == "ab" else f"[A={p.model_b}, B={p.model_a}]"
            for o in outs:
                raws += [f"{label} {t}" for t in o.raws]
            if not ok:
                per_order[order] = letters[order] = None
                errors.append(
                    f"order {label}: " + "; ".join(dict.fromkeys(o.error or "no verdict" for o in outs))
                )
                continue
            letter = _majority([str(o.value) for o in ok])
            letters[order] = letter
            rationales[order] = next((o.rationale for o in ok if o.value == letter), ok[0].rationale)
            # map the letter back to a model-relative side
            if letter == "tie":
                per_order[order] = "tie"
            elif order == "ab":
                per_order[order] = "a" if letter == "A" else "b"
            else:
                per_order[order] = "b" if letter == "A" else "a"
        meta["orders"] = letters
        meta["requests"] = sum(o.requests for o in all_outs)
        meta["cached"] = all(o.cached for o in all_outs)
        if repeats > 1:
            meta["repeats"] = repeats
            meta["votes"] = {
                order: [outcomes[(i, order, r)].value for r in range(repeats)] for order in ("ab", "ba")
            }
        raw = "\n\n---\n\n".join(raws)
        if per_order["ab"] is None or per_order["ba"] is None:
            verdicts.append(Verdict(**vid, winner=None, raw=raw, error="; ".join(errors), meta=meta))
            continue
        consistent = per_order["ab"] == per_order["ba"]
        meta["consistent"] = consistent
        side = per_order["ab"] if consistent else "tie"
        winner = {"a": p.model_a, "b": p.model_b, "tie": "tie"}[side]
        rationale = " | ".join(
            f"{('A=' + p.model_a) if o == 'ab' else ('A=' + p.model_b)}: {rationales[o]}"
            for o in ("ab", "ba")
            if rationales.get(o)
        )
        verdicts.append(Verdict(**vid, winner=winner, rationale=rationale, raw=raw, meta=meta))
    return verdicts


# --------------------------------------------------------------------------------------
# Aggregation (scores.json groups "judge" and "judge-pairwise")
# --------------------------------------------------------------------------------------


def count_missing(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Missing verdicts (score and winner None) per ``Verdict.model``."""
    out: dict[str, int] = {}
    for v in verdicts:
        out.setdefault(v.model, 0)
        if v.score is None and v.winner is None:
            out[v.model] += 1
    return out


def summarize_pointwise(
    verdicts: Sequence[Verdict], models: Sequence[str] | None = None, seed: int = 0
) -> dict[str, Any]:
    """The scores.json group "judge": per model, one MetricValue per judge (mean score, 95%
    bootstrap CI, n, missing), paired bootstrap tests between models on the items both were
    graded on, and info (per-task means, missing counts, spread of repeats)."""
    from harness.metrics.stats import aggregate, compare_models

    judges = list(dict.fromkeys(v.judge for v in verdicts))
    models = list(models) if models is not None else list(dict.fromkeys(v.model for v in verdicts))
    group: dict[str, Any] = {"kind": "judge", "models": {m: {} for m in models}, "paired": [], "info": {}}
    info: dict[str, Any] = {"judges": judges, "missing": {}, "by_task": {}, "spread": {}, "errors": {}}
    for j in judges:
        vj = [v for v in verdicts if v.judge == j]
        keys = list(dict.fromkeys((v.task, v.id) for v in vj))
        per_model: dict[str, list[float | None]] = {}
        for m in models:
            by_key = {(v.task, v.id): v for v in vj if v.model == m}
            if not by_key:
                continue
            scores = [by_key[k].score if k in by_key else None for k in keys]
            present = [by_key[k].score for k in by_key]
            per_model[m] = scores
            group["models"][m][j] = aggregate(present, higher_is_better=True, seed=seed).to_dict()
            info["missing"].setdefault(j, {})[m] = sum(1 for s in present if s is None)
            errs = [by_key[k].error for k in by_key if by_key[k].error]
            if errs:
                info["errors"].setdefault(j, {})[m] = _top_errors(errs)
            spreads = [by_key[k].spread for k in by_key if by_key[k].spread is not None]
            if spreads:
                info["spread"].setdefault(j, {})[m] = {
                    "mean": float(sum(spreads) / len(spreads)),
                    "max": float(max(spreads)),
                }
            tasks = sorted({k[0] for k in by_key})
            for t in tasks:
                vals = [by_key[k].score for k in by_key if k[0] == t and by_key[k].score is not None]
                info["by_task"].setdefault(j, {}).setdefault(t, {})[m] = (
                    float(sum(vals) / len(vals)) if vals else None
                )
        if len(per_model) > 1:
            group["paired"] += [t.to_dict() for t in compare_models(per_model, metric=j, seed=seed)]
        first = next((v for v in vj if v.meta.get("backend")), None)
        if first is not None:
            info.setdefault("backend", first.meta["backend"])
    group["info"] = info
    return group


def _top_errors(errors: list[str], k: int = 3) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for e in errors:
        counts[e[:160]] = counts.get(e[:160], 0) + 1
    return [{"error": e, "count": n} for e, n in sorted(counts.items(), key=lambda x: -x[1])[:k]]


def summarize_pairwise(
    verdicts: Sequence[Verdict], pairs: Sequence[tuple[str, str]] | None = None, seed: int = 0
) -> dict[str, Any]:
    """The scores.json group "judge-pairwise": for each pair "<a>_vs_<b>" the win / tie /
    loss rates of ``a`` (MetricValues over the non-missing verdicts, bootstrap CIs) and the
    position-swap consistency rate; info holds counts, inconsistent pairs, missing, and the
    mean length (chars) of winning vs losing answers."""
    from harness.metrics.stats import aggregate

    if pairs is None:
        pairs = list(
            dict.fromkeys(
                (v.meta.get("model_a"), v.meta.get("model_b")) for v in verdicts if v.meta.get("model_a")
            )
        )
    group: dict[str, Any] = {"kind": "judge", "models": {}, "paired": [], "info": {}}
    info: dict[str, Any] = {"pairs": {}, "judges": list(dict.fromkeys(v.judge for v in verdicts))}
    for a, b in pairs:
        name = f"{a}_vs_{b}"
        vs = [v for v in verdicts if v.model == name]
        present = [v for v in vs if v.winner is not None]
        win = [1.0 if v.winner == a else 0.0 for v in present]
        tie = [1.0 if v.winner == "tie" else 0.0 for v in present]
        loss = [1.0 if v.winner == b else 0.0 for v in present]
        consistent = [1.0 if v.meta.get("consistent") else 0.0 for v in present]
        n_missing = len(vs) - len(present)

        def mv(values, hib=True, n_missing=n_missing):
            m = aggregate(values, higher_is_better=hib, seed=seed)
            m.missing = n_missing
            return m.to_dict()

        group["models"][name] = {
            "win": mv(win),
            "tie": mv(tie),
            "loss": mv(loss, hib=False),
            "consistency": mv(consistent),
        }
        win_len, lose_len = [], []
        for v in present:
            if v.winner in (a, b):
                la, lb = v.meta.get("len_a"), v.meta.get("len_b")
                if la is None or lb is None:
                    continue
                win_len.append(la if v.winner == a else lb)
                lose_len.append(lb if v.winner == a else la)
        info["pairs"][name] = {
            "a": a,
            "b": b,
            "n": len(vs),
            "wins": int(sum(win)),
            "ties": int(sum(tie)),
            "losses": int(sum(loss)),
            "missing": n_missing,
            "inconsistent": int(len(present) - sum(consistent)),
            "inconsistent_ids": [f"{v.task}/{v.id}" for v in present if not v.meta.get("consistent")][:50],
            "win_rate_excl_ties": (sum(win) / (sum(win) + sum(loss))) if (sum(win) + sum(loss)) else None,
            "mean_len_winner": _mean(win_len),
            "mean_len_loser": _mean(lose_len),
        }
    group["info"] = info
    return group


def _mean(xs: list[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None
