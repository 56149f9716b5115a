"""The score stage: stored samples, benchmark records and verdicts -> ``scores.json``.

It reads only the run directory, so scores can be recomputed without loading a model. Every
aggregate carries a 95% interval (Wilson for 0/1 metrics, else bootstrap); every pair of models on the same items gets a
paired test (paired bootstrap; McNemar for 0/1 metrics).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.records import Coverage, MetricValue, Sample

# Per-sample fields the Engine stores for perplexity; turned into corpus metrics here.
NLL_FIELDS = ("nll", "nll_tokens", "nll_bytes")
# Corpus metrics: the stored per-sample sentence scores feed their paired tests.
CORPUS_METRICS = {"bleu": "bleu_sent", "chrf": "chrf_sent"}
BINARY_EXTRA = {"acc", "acc_norm"}


def direction(metric: str) -> tuple[bool | None, bool]:
    """(higher_is_better, binary) of a per-sample output name, from the metric registry; None: no
    better direction (lengths). A name no metric writes is aggregated as higher-is-better."""
    if metric in BINARY_EXTRA:
        return True, True
    from harness.errors import HarnessError
    from harness.metrics.registry import output_spec

    try:
        _, hib, binary = output_spec(metric)
    except HarnessError:
        return True, False
    return (None if hib is None else bool(hib)), bool(binary)


def _aligned(per_model: dict[str, list[Sample]]) -> tuple[list[str], dict[str, dict[str, Sample]]]:
    """Sample ids every model has, in the first model's order."""
    by_id = {m: {s.id: s for s in samples} for m, samples in per_model.items()}
    first = next(iter(per_model.values()), [])
    ids = [s.id for s in first if all(s.id in d for d in by_id.values())]
    return ids, by_id


def _metric_names(samples: list[Sample]) -> list[str]:
    names: dict[str, None] = {}
    for s in samples:
        for k in s.metrics:
            if k not in NLL_FIELDS:
                names[k] = None
    return list(names)


def task_group(per_model: dict[str, list[Sample]], seed: int = 0, n_resamples: int = 1000,
               corpus: bool = True) -> dict[str, Any]:
    """One scores.json group for samples of one task (or pooled tasks when corpus=False)."""
    from harness.metrics.perplexity import aggregate_bits_per_byte, aggregate_perplexity
    from harness.metrics.stats import aggregate, compare_models

    ids, by_id = _aligned(per_model)
    models = list(per_model)
    group: dict[str, Any] = {"kind": "task", "models": {m: {} for m in models}, "paired": [], "info": {"n_items": len(ids)}}
    all_samples = [s for ss in per_model.values() for s in ss]
    sentence_level = set(CORPUS_METRICS.values())
    for metric in _metric_names(all_samples):
        # items whose task does not compute the metric are not "missing" it (pooled tasks: the json
        # metric exists for the JSON task's items only); an item that has it as None is missing
        scored = [i for i in ids if any(metric in by_id[m][i].metrics for m in models)]
        values = {m: [by_id[m][i].metrics.get(metric) for i in scored] for m in models}
        hib, binary = direction(metric)
        if metric in sentence_level and corpus:  # replaced by corpus BLEU / chrF below
            continue
        if hib is None:  # stored as 'higher' (MetricValue needs a bool); reports show no winner
            group["info"].setdefault("neutral", []).append(metric)
        for m in models:
            group["models"][m][metric] = aggregate(values[m], higher_is_better=hib is not False, seed=seed,
                                                   n_resamples=n_resamples, binary=binary).to_dict()
        group["paired"] += [t.to_dict() for t in compare_models(values, metric, binary=binary, seed=seed,
                                                                n_resamples=n_resamples)]
    # perplexity of the reference answer: corpus-level exp(sum NLL / sum tokens), and bits per byte
    if any("nll" in s.metrics for s in all_samples):
        nll_stats: dict[str, list] = {}
        with_nll = [i for i in ids if any("nll" in by_id[m][i].metrics for m in models)]
        for m in models:
            ss = [by_id[m][i] for i in with_nll]
            nll = [s.metrics.get("nll") for s in ss]
            toks = [s.metrics.get("nll_tokens") for s in ss]
            nbytes = [s.metrics.get("nll_bytes") for s in ss]
            group["models"][m]["perplexity"] = aggregate_perplexity(nll, toks, seed=seed,
                                                                    n_resamples=n_resamples).to_dict()
            nll_stats[m] = list(zip(nll, toks, nbytes))
            bpb = aggregate_bits_per_byte(nll, nbytes, seed=seed, n_resamples=n_resamples)
            group["models"][m]["bits_per_byte"] = bpb.to_dict()
        both = [k for k in range(len(with_nll)) if all(None not in nll_stats[m][k][:2] for m in models)]
        ppl_rows = {m: [nll_stats[m][k][:2] for k in both] for m in models}
        bpb_rows = {m: [(nll_stats[m][k][0], nll_stats[m][k][2]) for k in both] for m in models}
        group["paired"] += _paired_corpus(models, ppl_rows, _ppl, "perplexity", seed, n_resamples)
        group["paired"] += _paired_corpus(models, bpb_rows, _bpb, "bits_per_byte", seed, n_resamples)
    if corpus:
        _corpus_metrics(group, per_model, by_id, ids, seed, n_resamples)
    return group


def _is_preference(info: dict[str, Any], task: str, per_model: dict[str, list[Sample]]) -> bool:
    """A preference task's samples (run.json names them; a hand-made run: every sample has pref_acc)."""
    samples = [s for ss in per_model.values() for s in ss]
    return task in (info.get("preference_tasks") or []) or bool(samples) and all("pref_acc" in s.metrics
                                                                                 for s in samples)


def preference_group(per_model: dict[str, list[Sample]], seed: int = 0, n_resamples: int = 1000) -> dict[str, Any]:
    """The scores.json group of a preference task: a task group (kind "task", so reports and gates
    address it like one) whose info says ``type: preference``, each model's reference and beta; a
    model without a reference has no dpo_reward_* entries (rather than a column of missing values)."""
    group = task_group(per_model, seed=seed, n_resamples=n_resamples, corpus=False)
    refs: dict[str, Any] = {}
    for m, samples in per_model.items():
        meta = next((s.meta for s in samples if s.meta.get("reference")), None)
        if meta is None:
            for metric in ("dpo_reward_margin", "dpo_reward_acc"):
                group["models"][m].pop(metric, None)
        else:
            refs[m] = {"reference": meta["reference"], "beta": meta.get("beta"), "beta_source": meta.get("beta_source")}
    group["info"].update({"type": "preference", "dpo_reference": refs})
    return group


def _corpus_metrics(group, per_model, by_id, ids, seed, n_resamples) -> None:
    """Corpus BLEU / chrF replace the mean of sentence scores; paired tests stay sentence-level.
    Computed here only: the generate stage stores the sentence scores, never a corpus score."""
    from harness.metrics.lexical import corpus_score

    models = list(per_model)
    for metric, sentence in CORPUS_METRICS.items():
        if not all(any(sentence in s.metrics for s in per_model[m]) for m in models):
            continue
        rows: dict[str, list] = {}
        for m in models:
            ss = [by_id[m][i] for i in ids]
            preds, refs = [s.response for s in ss], [s.reference for s in ss]
            lang = Counter(s.lang for s in ss).most_common(1)[0][0] if ss else "en"
            res = corpus_score(metric, preds, refs, lang=lang, seed=seed, n_resamples=n_resamples)
            if metric == "bleu":
                group["info"]["bleu_tokenize"] = res["tokenize"]
            group["info"][f"{metric}_signature"] = res["signature"]
            mv = MetricValue(value=res["score"], ci=tuple(res["ci"]) if res["ci"] else None, n=res["n"],
                             higher_is_better=True, ci_method="bootstrap")
            group["models"][m][metric] = mv.to_dict()
            rows[m], score_fn = res["stats"], res["score_fn"]
        group["paired"] += _paired_corpus(models, rows, score_fn, metric, seed, n_resamples)


def _ppl(row) -> float:
    from harness.metrics.perplexity import perplexity

    return perplexity(row[0], row[1])


def _bpb(row) -> float:
    from harness.metrics.perplexity import bits_per_byte

    return bits_per_byte(row[0], row[1])


def _paired_corpus(models: list[str], rows: dict[str, list], score_fn, metric: str, seed: int,
                   n_resamples: int) -> list[dict[str, Any]]:
    """Paired corpus bootstrap for every later model against every earlier one."""
    from harness.metrics.stats import MIN_PAIRED_N, model_pairs, paired_bootstrap_sufficient
    from harness.records import PairedTest

    out = []
    for a, b in model_pairs(models):
        if not rows.get(a) or not rows.get(b):
            continue
        res = paired_bootstrap_sufficient(rows[a], rows[b], score_fn, seed=seed, n_resamples=n_resamples)
        out.append(PairedTest(metric=metric, a=a, b=b, diff=res["diff"], ci=res["ci"], p_value=res["p_value"],
                              test="paired-bootstrap (corpus)",
                              significant=bool(res["p_value"] < 0.05 and res["n"] >= MIN_PAIRED_N),
                              n=res["n"]).to_dict())
    return out


def _planned(info: dict[str, Any], key: str, name: str) -> bool:
    """Whether the run's current plan (run.json) includes ``name`` under ``key``. A run resumed
    under a changed config keeps files of models/tasks the new config dropped: they are not scored."""
    names = info.get(key)
    if key == "judges":
        names = (info.get("judge") or {}).get("judges")
    if names is None:  # a hand-made run directory without a plan: everything counts
        return True
    if key == "models_order" and "_vs_" in name:
        return all(_planned(info, key, m) for m in name.split("_vs_"))
    return name in names


def _task_samples(rundir, info: dict[str, Any]) -> dict[str, dict[str, list[Sample]]]:
    order = info.get("models_order") or []
    out: dict[str, dict[str, list[Sample]]] = {}
    for model, task, _ in rundir.sample_files():
        if _planned(info, "models_order", model) and (_planned(info, "tasks", task)
                                                      or task in (info.get("preference_tasks") or [])):
            out.setdefault(task, {})[model] = rundir.samples(model, task)
    rank = {m: i for i, m in enumerate(order)}
    return {t: dict(sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank)))) for t, d in out.items()}


def execute(rundir, seed: int = 0, n_resamples: int = 1000, coverage: Coverage | None = None) -> dict[str, Any]:
    """Compute every group and write scores.json (with the coverage rule readers apply)."""
    info = rundir.run_info()
    order = info.get("models_order") or []
    groups: dict[str, Any] = {}
    by_task = _task_samples(rundir, info)
    task_order = info.get("tasks") or []
    tasks = [t for t in task_order if t in by_task] + [t for t in by_task if t not in task_order]
    preference = [t for t in tasks if _is_preference(info, t, by_task[t])]
    generation = [t for t in tasks if t not in preference]
    for task in generation:
        groups[task] = task_group(by_task[task], seed=seed, n_resamples=n_resamples)
    for task in preference:
        groups[task] = preference_group(by_task[task], seed=seed, n_resamples=n_resamples)
    if len(generation) > 1:  # preference groups are not pooled: their metrics are of another kind
        pooled: dict[str, list[Sample]] = {}
        for task in generation:
            for m, ss in by_task[task].items():
                pooled.setdefault(m, []).extend(Sample(**{**s.to_dict(), "id": f"{s.task}/{s.id}"}) for s in ss)
        groups["all"] = task_group(pooled, seed=seed, n_resamples=n_resamples, corpus=False)
        groups["all"]["info"]["tasks"] = generation
    groups.update(_benchmark_groups(rundir, info, seed, n_resamples))
    judge_groups, card = _judge_groups(rundir, info, seed)
    groups.update(judge_groups)
    scores = {"schema": 1, "run_id": info.get("run_id"), "config_hash": info.get("config_hash"),
              "models": order, "coverage": (coverage or Coverage()).to_dict(), "groups": groups}
    if card is not None:
        scores["judge_reliability"] = card
    rundir.write_json("scores.json", scores)
    from harness.tracking.lm_eval_results import write_lm_eval_results

    write_lm_eval_results(rundir, scores)  # results_<model>.json: the same numbers in lm-eval's shape
    return scores


def _benchmark_groups(rundir, info: dict[str, Any], seed: int, n_resamples: int) -> dict[str, Any]:
    """One group per benchmark from benchmarks/<model>/<bench>.jsonl + .summary.json."""
    files = rundir.benchmark_files()
    if not files:
        return {}
    from harness.benchmarks import BenchmarkResult, benchmark_group

    order = info.get("models_order") or []
    by_bench: dict[str, dict[str, Any]] = {}
    for model, bench, _ in files:
        if not (_planned(info, "models_order", model) and _planned(info, "benchmarks", bench)):
            continue
        summary = rundir.benchmark_summary(model, bench)
        by_bench.setdefault(bench, {})[model] = BenchmarkResult.from_dict(summary, rundir.benchmark_records(model, bench))
    rank = {m: i for i, m in enumerate(order)}
    groups = {}
    for bench, results in by_bench.items():
        ordered = dict(sorted(results.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        groups[bench] = benchmark_group(ordered, list(ordered), seed=seed, n_resamples=n_resamples)
    return groups


def _judge_groups(rundir, info: dict[str, Any], seed: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """scores.json groups 'judge' (pointwise) and 'judge-pairwise' from stored verdicts, and the
    judge's reliability card (None when no judge ran)."""
    from harness.judging import summarize_pairwise, summarize_pointwise
    from harness.judging.reliability import reliability_card

    order = info.get("models_order") or []
    pointwise, pairwise = [], []
    for judge, model, task, _ in rundir.verdict_files():
        if not all((_planned(info, "judges", judge), _planned(info, "models_order", model),
                    _planned(info, "tasks", task))):
            continue
        vs = rundir.verdicts(judge, model, task)
        (pairwise if "_vs_" in model else pointwise).extend(vs)
    run_judge = info.get("judge", {})
    judge_info = {"judge_model": run_judge.get("backend"), "small_local": run_judge.get("small_local", False)}
    groups: dict[str, Any] = {}
    if pointwise:
        present = [m for m in order if any(v.model == m for v in pointwise)]
        groups["judge"] = summarize_pointwise(pointwise, present, seed=seed)
        groups["judge"]["info"].update(judge_info)
    if pairwise:
        group = summarize_pairwise(pairwise, seed=seed)
        group["info"].update(judge_info)
        group["info"].update(_pairwise_views(group))
        groups["judge-pairwise"] = group
    card = None
    if pointwise or pairwise:
        models = (rundir.config() or {}).get("models") or {}
        card = reliability_card(pointwise + pairwise, judge_spec=run_judge.get("backend"),
                                models=models if isinstance(models, dict) else {}, evaluated=order)
    return groups, card


def _pairwise_views(group: dict[str, Any]) -> dict[str, Any]:
    """The win/tie/loss matrix, consistency and length bias in the shape reports show."""
    matrix: dict[str, dict[str, dict[str, int]]] = {}
    consistency, length_bias = {}, {}
    for name, p in group["info"].get("pairs", {}).items():
        matrix.setdefault(p["a"], {})[p["b"]] = {"win": p["wins"], "tie": p["ties"], "loss": p["losses"],
                                                 "missing": p["missing"]}
        matrix.setdefault(p["b"], {})[p["a"]] = {"win": p["losses"], "tie": p["ties"], "loss": p["wins"],
                                                 "missing": p["missing"]}
        cons = group["models"].get(name, {}).get("consistency", {}).get("value")
        if cons is not None:
            consistency[name] = cons
        length_bias[name.replace("_vs_", " vs ")] = (
            f"winner {p['mean_len_winner']:.0f} chars, loser {p['mean_len_loser']:.0f} chars"
            if p.get("mean_len_winner") is not None and p.get("mean_len_loser") is not None else "no decided pairs")
    return {"matrix": matrix, "consistency": consistency, "length_bias": length_bias}
