"""pydantic models of ``harness.yaml``: the one place that validates user input.

``load_config(path)`` returns a validated ``HarnessConfig`` or raises ``HarnessError`` with
the file, the field and what is allowed. Relative paths in the file are resolved against the
file's folder (``HarnessConfig.base_dir``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import HarnessError, did_you_mean
from harness.io import read_yaml, yaml_key_lines

PROMPT_FORMATS = ("chat", "alpaca", "alpaca-ko", "chatml", "zephyr", "llama3", "gemma", "phi3", "qa-ko", "plain")


TEMPLATE_SUFFIXES = (".jinja", ".j2", ".jinja2", ".txt")


def check_prompt_format(v: str | None) -> str | None:
    """A prompt format must be a named one, a Jinja template, or a template file path."""
    if v is None or v in PROMPT_FORMATS or "{{" in v or "{%" in v or v.endswith(TEMPLATE_SUFFIXES):
        return v
    raise ValueError(f"{v!r} is not a known format{did_you_mean(v, PROMPT_FORMATS)}, a Jinja template or a "
                     f"template file ({', '.join(TEMPLATE_SUFFIXES)}); known formats: {', '.join(PROMPT_FORMATS)}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


BACKENDS = ("hf", "vllm", "openai", "ollama")
SERVED_BACKENDS = ("openai", "ollama")
# the `vllm:` options of a model (backend: vllm) and their types
VLLM_OPTIONS: dict[str, type] = {
    "gpu_memory_utilization": float, "max_model_len": int, "tensor_parallel_size": int,
    "enforce_eager": bool, "kv_cache_space_gb": float, "max_num_seqs": int, "max_loras": int, "seed": int,
}


def check_vllm_options(options: dict | None, where: str = "vllm") -> dict[str, Any]:
    """The user's ``vllm:`` mapping, checked: unknown names (with a did-you-mean) and wrong types
    are one-line errors."""
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key not in VLLM_OPTIONS:
            raise HarnessError(f"{where}.{key}: unknown option{did_you_mean(key, VLLM_OPTIONS)}",
                               fix=f"Use one of: {', '.join(VLLM_OPTIONS)}.")
        kind = VLLM_OPTIONS[key]
        ok = isinstance(value, bool) if kind is bool else \
            isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
        if not ok or (kind is not bool and value <= 0):
            want = {bool: "true or false", int: "a positive integer", float: "a positive number"}[kind]
            raise HarnessError(f"{where}.{key}: {value!r} is not {want}", fix=f"Give {key} {want}.")
        out[key] = value
    return out


class ModelSpec(_Strict):
    """One checkpoint. Exactly one of ``path``, ``adapter`` or ``responses`` must be set, except
    for a served model (``backend: openai`` / ``ollama``), which sets ``model`` instead.

    - ``path``: a local HF folder, a hub id, a ``.gguf`` file, or ``zoo:NAME``.
    - ``adapter``: a PEFT adapter folder; ``base`` names another model of the config or a
      path/hub id/zoo ref (default: the adapter's ``base_model_name_or_path``).
    - ``responses``: a JSON/JSONL file of answers another system generated; ``field`` is the
      answer field (default ``model_response``).
    - ``backend``: how the weights are served: ``hf`` (transformers, default), ``vllm`` (one
      offline vLLM engine per base, adapters as LoRA requests; options under ``vllm:``),
      ``openai`` (an OpenAI-compatible server: ``base_url`` + ``model``), ``ollama`` (``host`` +
      ``model``).
    """

    path: str | None = None
    adapter: str | None = None
    base: str | None = None
    responses: str | None = None
    field: str = "model_response"
    gguf_file: str | None = None
    tokenizer: str | None = None
    revision: str | None = None
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    prompt_format: str | None = Field(
        default=None, description="'chat' (the tokenizer's chat template), a named format, or a Jinja template"
    )
    system_prompt: str | None = None
    backend: Literal["hf", "vllm", "openai", "ollama"] = "hf"
    model: str | None = Field(default=None, description="the model name a server knows (openai / ollama)")
    base_url: str | None = Field(default=None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    host: str | None = Field(default=None, description="Ollama server (default OLLAMA_HOST or localhost:11434)")
    api_key: str | None = None
    concurrency: int = Field(default=4, ge=1, description="requests in flight to a served model")
    timeout: float = Field(default=120.0, gt=0, description="seconds per request to a served model")
    max_retries: int = Field(default=4, ge=0, description="retries of a failed request (5xx, 429, dropped)")
    bos_text: str | None = Field(default=None, description="the BOS token as text, when the server does not add it")
    vllm: dict[str, Any] = Field(default_factory=dict, description="vLLM engine options (backend: vllm)")

    @field_validator("prompt_format")
    @classmethod
    def _known_format(cls, v: str | None) -> str | None:
        return check_prompt_format(v)

    @field_validator("vllm")
    @classmethod
    def _known_vllm_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            return check_vllm_options(v)
        except HarnessError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in ("path", "adapter", "responses") if getattr(self, k)]
        if self.backend in SERVED_BACKENDS:
            if given:
                raise ValueError(f"a served model (backend: {self.backend}) is named by 'model', not "
                                 f"{given[0]!r}: the server holds the weights")
            if not self.model:
                raise ValueError(f"backend: {self.backend} needs 'model' (the name the server serves)")
            if self.base_url and self.backend == "ollama":
                raise ValueError("'base_url' is for backend: openai; Ollama takes 'host'")
            if self.host and self.backend == "openai":
                raise ValueError("'host' is for backend: ollama; an OpenAI-compatible server takes 'base_url'")
            return self
        for key in ("model", "base_url", "host", "api_key", "bos_text"):
            if getattr(self, key):
                raise ValueError(f"{key!r} only applies to a served model (backend: openai or ollama)")
        if len(given) != 1:
            raise ValueError("set exactly one of 'path', 'adapter' or 'responses'"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.responses and self.backend != "hf":
            raise ValueError(f"a responses file is not served by a backend: remove 'backend: {self.backend}'")
        if self.vllm and self.backend != "vllm":
            raise ValueError("'vllm' options apply only with backend: vllm")
        if self.backend == "vllm" and (self.load_in_4bit or self.load_in_8bit or self.gguf_file
                                       or (self.path or "").endswith(".gguf")):
            raise ValueError("backend: vllm here serves HF checkpoints only: use backend: hf for "
                             "bitsandbytes 4/8-bit and GGUF files")
        if self.base and not self.adapter:
            raise ValueError("'base' only applies to an 'adapter'")
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("choose one of load_in_4bit / load_in_8bit")
        return self


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)
    batch_size: int | Literal["auto"] = "auto"


class BenchmarkSpec(_Strict):
    name: str
    num_fewshot: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    batch_size: int | Literal["auto"] = 16
    apply_chat_template: bool = False


class JudgeConfig(_Strict):
    backend: str = "none"  # ollama:MODEL | openai:MODEL | hf:SPEC | none | auto
    judges: list[str] = Field(default_factory=lambda: ["reference-0-100"])
    host: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    concurrency: int = Field(default=4, ge=1)
    retries: int = Field(default=2, ge=0)
    repeats: int = Field(default=1, ge=1)
    limit: int | None = Field(default=None, ge=1)
    num_ctx: int | None = None
    max_missing_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    fallback: str | None = None  # used by the demo: backend when the first one is unreachable
    scoring: Literal["auto", "text"] = "auto"  # auto: verdicts from log-probs where the backend has them


class ParityConfig(_Strict):
    """The check of a fast backend (vLLM) against transformers on the first items of the first task."""

    items: int = Field(default=8, ge=0, description="items compared (0 turns the check off)")
    max_logprob_diff: float = Field(default=0.05, gt=0, description="warn above this |Δ log p| per token, nats")
    min_agreement: float = Field(default=0.75, ge=0, le=1, description="warn below this greedy agreement")


class CoverageConfig(_Strict):
    """Below this an aggregate is "insufficient": not shown as a number, never best or ▲/▼, gates fail."""

    min_n: int = Field(default=10, ge=1, description="fewest scored items")
    max_missing_share: float = Field(default=0.5, ge=0, le=1, description="largest share of missing items")


class TrackingConfig(_Strict):
    """``tracking:``: experiment trackers every ``harness run`` logs to (``--log`` replaces ``log``)."""

    log: list[str] = Field(default_factory=list, description="mlflow, mlflow:URI, wandb")
    project: str = Field(default="harness", description="MLflow experiment / W&B project")


DEFAULT_SHARD_SIZE = 64
CLUSTER_ENGINES = ("ray", "local")  # local: the same shards in this process, no Ray


class ClusterConfig(_Strict):
    """``cluster:``: data-parallel evaluation on Ray (docs/cluster.md). Work goes out in shards of
    ``shard_size`` items (of one model x task, or requests of one call), never 1/N of the data,
    so results and resume do not depend on ``workers``."""

    engine: str = "ray"
    address: str = Field(default="local", description="local | auto | ray://host:port | host:port")
    workers: int = Field(default=1, ge=1)
    gpus_per_worker: float | None = Field(default=None, ge=0, description="None: 1 when the cluster has GPUs")
    cpus_per_worker: float = Field(default=1.0, gt=0)
    shard_size: int = Field(default=DEFAULT_SHARD_SIZE, ge=1)

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        if v not in CLUSTER_ENGINES:
            raise ValueError(f"{v!r} is not a cluster engine{did_you_mean(v, CLUSTER_ENGINES)}; known: ray, local")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        import re

        if v in ("local", "auto") or re.fullmatch(r"(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d+", v):
            return v
        raise ValueError(f"{v!r} is not a cluster address: use local, auto, ray://host:port or host:port")


class HarnessConfig(_Strict):
    models: dict[str, ModelSpec]
    tasks: list[str] = Field(default_factory=list)
    benchmarks: list[BenchmarkSpec] = Field(default_factory=list)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    gates: list[Any] = Field(default_factory=list)
    baseline: str | None = None
    output_dir: str | None = Field(default=None, description="where run directories go; relative to this file "
                                   "(default: ./reports of the current folder)")
    seed: int = 0
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    parity: ParityConfig = Field(default_factory=ParityConfig)
    coverage: CoverageConfig = Field(default_factory=CoverageConfig)
    limit: int | None = Field(default=None, ge=1, description="evaluate only the first N samples of each task")
    bootstrap_resamples: int = Field(default=1000, ge=100)
    cluster: ClusterConfig | None = None  # None: one process, no Ray (harness/cluster)
    tracking: TrackingConfig | None = None  # None: no tracker (harness/tracking)
    base_dir: str = Field(default=".", exclude=True)

    @field_validator("models", mode="before")
    @classmethod
    def _string_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for name in v:
                if not isinstance(name, str):
                    raise ValueError(f"model name {name!r} is not text (YAML reads yes/no/on/off/true/false "
                                     "as booleans and digits as numbers): quote it")
        return v

    @field_validator("models")
    @classmethod
    def _names(cls, v: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if not v:
            raise ValueError("name at least one model")
        for name in v:
            if not name or any(c in name for c in "/.: "):
                raise ValueError(f"model name {name!r} may not contain '/', '.', ':' or spaces")
        return v

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _bench_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": b} if isinstance(b, str) else b for b in v]
        return v

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_string(cls, v: Any) -> Any:
        if v is None:
            return {"backend": "none"}
        if isinstance(v, str):
            return {"backend": v}
        return v

    @model_validator(mode="after")
    def _limit_benchmarks(self) -> HarnessConfig:
        """``limit`` (``--limit`` / ``-n``) caps benchmarks too: each keeps the smaller of the two
        (the limit is in a benchmark unit's key, so a limited run never resumes into a full one)."""
        if self.limit is not None:
            for b in self.benchmarks:
                if b.limit is None or b.limit > self.limit:
                    b.limit = self.limit
        return self

    @model_validator(mode="after")
    def _bases_exist(self) -> HarnessConfig:
        for name, spec in self.models.items():
            if spec.base == name:
                raise ValueError(f"models.{name}.base names the model itself")
        # cycles between models
        for name in self.models:
            seen, cur = [name], self.models[name].base
            while cur in self.models:
                if cur in seen:
                    raise ValueError(f"models: base chain loops: {' -> '.join(seen + [cur])}")
                seen.append(cur)
                cur = self.models[cur].base
        return self

    def resolve_path(self, p: str) -> Path:
        """A path from the config file, relative to the file's folder."""
        path = Path(p).expanduser()
        return (path if path.is_absolute() else Path(self.base_dir) / path).resolve()

    def output_root(self) -> Path:
        """Where run directories go: ``output_dir`` (relative to the config file's folder), else
        ``./reports`` of the current folder."""
        return self.resolve_path(self.output_dir) if self.output_dir else (Path.cwd() / "reports").resolve()

    def snapshot(self) -> dict[str, Any]:
        """The config as written to a run directory: API keys are replaced by "***" (a run
        directory is shared; use the OPENAI_API_KEY environment variable instead)."""
        data = self.model_dump(mode="json", exclude={"base_dir"})
        for optional in ("cluster", "tracking"):  # (a config without one snapshots as before it existed)
            if data.get(optional) is None:
                data.pop(optional, None)
        for part in [*(data.get("models") or {}).values(), data.get("judge") or {}]:
            if isinstance(part, dict) and part.get("api_key"):
                part["api_key"] = "***"
        return data

    def hash(self) -> str:
        """Where and on how many workers a run computes, and where it is logged, do not change what
        it computes."""
        data = {k: v for k, v in self.snapshot().items() if k not in ("cluster", "tracking")}
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _schema_at(loc: tuple) -> type[BaseModel] | None:
    """The config model that owns the field at ``loc`` (for "did you mean")."""
    schema: Any = HarnessConfig
    for part in loc:
        if schema is HarnessConfig:
            schema = {"models": dict, "generation": GenerationConfig, "judge": JudgeConfig,
                      "cluster": ClusterConfig, "tracking": TrackingConfig, "benchmarks": list}.get(part)
            schema = {dict: "models", list: "benchmarks"}.get(schema, schema)
        elif schema == "models":
            schema = ModelSpec
        elif schema == "benchmarks":
            schema = BenchmarkSpec
        else:
            return None
    return schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None


def format_validation_error(err: ValidationError, where: str, lines: dict[tuple, int] | None = None,
                            schema_at=None) -> str:
    """Every problem, on one line: ``file:line: field 'a.b': what (did you mean ...)``; unknown
    fields first (a typo usually explains the "missing" error that follows it)."""
    schema_at = schema_at or _schema_at
    problems = []
    for e in sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden"):
        loc = tuple(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            schema = schema_at(loc[:-1])
            msg = "unknown field" + (did_you_mean(loc[-1], schema.model_fields) if schema else "")
        given = e.get("input")
        if e["type"] not in ("extra_forbidden", "missing") and isinstance(given, (str, int, float, bool)) \
                and repr(given) not in msg:
            msg += f" (got {given!r})"
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        line = (lines or {}).get(loc) or (lines or {}).get(loc[:-1])
        problems.append(f"{where}{f':{line}' if line else ''}: field '{dotted}': {msg}")
    return "; ".join(problems)


def config_from_dict(data: Any, *, where: str = "config", base_dir: str | Path = ".",
                     source: Path | None = None) -> HarnessConfig:
    """A validated config from parsed YAML; ``source`` (the file) lets an error name its lines."""
    if not isinstance(data, dict):
        raise HarnessError(f"{where}: expected a mapping with 'models:' at the top level, "
                           f"got {type(data).__name__}", fix="See README 'Configuration'.")
    try:
        cfg = HarnessConfig.model_validate({**data, "base_dir": str(base_dir)})
    except ValidationError as err:
        lines = yaml_key_lines(source.read_text(encoding="utf-8")) if source is not None else None
        raise HarnessError(format_validation_error(err, where, lines),
                           fix="See README 'Configuration' for the allowed fields.") from None
    return cfg


def load_config(path: str | Path) -> HarnessConfig:
    """Read and validate a harness.yaml."""
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"config file not found: {p}", fix="Pass --config PATH or run without one for the demo.")
    return config_from_dict(read_yaml(p), where=str(p), base_dir=p.resolve().parent, source=p)
