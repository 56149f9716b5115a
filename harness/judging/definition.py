"""A judge definition: the folder ``judges/<name>/`` (``judge.yaml`` + one prompt template per
language), validated and hashed when loaded.

Templates render in Jinja's sandbox (harness/templating.py); each is checked when the judge
loads (syntax, allowed variables, one stand-in render), so a bad or hostile template fails
before any model loads or any request is sent. The content hash names the judge in cache keys
and work-unit keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import HarnessError, did_you_mean

BUILTIN_JUDGES = Path(__file__).resolve().parent.parent / "judges"  # shipped in the package

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
    _compiled: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # lang -> template

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
        if pl not in self._compiled:  # compiled once per language, not once per judged item
            self._compiled[pl] = compile_template(self.templates[pl], where, strict=True)
        user = render_template(self._compiled[pl], where, lang=pl, min=self.lo, max=self.hi, **variables).strip()
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
    dirs.append(BUILTIN_JUDGES)
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def available_judges() -> list[str]:
    """Names of the judges found in HARNESS_JUDGES, ./judges and the built-in harness/judges/."""
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
                f"judge '{name_or_path}' not found{did_you_mean(str(name_or_path), available_judges())} "
                f"(available: {have})",
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
            fix="See harness/judges/reference-0-100/judge.yaml for the expected fields.",
        ) from None

    import jinja2
    from jinja2 import meta

    from harness.templating import sandboxed_env

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
    canon = json.dumps(
        {"spec": spec.model_dump(), "templates": templates}, sort_keys=True, ensure_ascii=False
    )
    digest = hashlib.sha256(canon.encode("utf-8")).hexdigest()
    defn = JudgeDefinition(spec=spec, templates=templates, path=yaml_path, hash=digest)
    # render each template once with stand-in values, the way judging will: a template the sandbox
    # blocks fails here, before any model loads or any request is sent
    for lang in templates:
        defn.render(lang, **{v: "x" for v in allowed - {"lang", "min", "max"}})
    return defn
