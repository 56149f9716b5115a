"""Gate rules, statistical mode, baselines, fail-closed, JUnit / Markdown / exit codes."""

from __future__ import annotations

import io
import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from runs import make_run

from harness.baseline import load_baseline, save_baseline
from harness.errors import HarnessError
from harness.gate import (
    CompareRule,
    DropRule,
    check_gates,
    evaluate_gates,
    format_table,
    gate_main,
    load_rules,
    parse_rule,
    to_markdown,
    write_junit,
)
from harness.records import Sample

# --------------------------------------------------------------------------- fixtures


def mv(value, ci=None, n=50, missing=0, hib=True):
    return {"value": value, "ci": list(ci) if ci else None, "n": n, "missing": missing,
            "higher_is_better": hib, "stderr": None}


def pt(metric, a, b, diff, ci, significant=False, p=0.5):
    return {"metric": metric, "a": a, "b": b, "diff": diff, "ci": list(ci) if ci else None, "p_value": p,
            "test": "paired-bootstrap", "significant": significant, "n": 50}


def write_run(root: Path, groups: dict, *, models=("base", "sft", "dpo"), config: dict | None = None,
              run_id: str = "run-1", samples: dict | None = None) -> Path:
    """A run directory following the contract; ``samples`` = {(model, task): [(id, {metric: v})]}."""
    cfg = {"models": {m: {"path": f"/ckpt/{m}"} for m in models}, "tasks": [], "judge": {"backend": "none"},
           "gates": []}
    cfg.update(config or {})
    run = make_run(root / "reports" / run_id,
                   {"schema": 1, "run_id": run_id, "config_hash": "abc123", "models": list(models), "groups": groups},
                   config=cfg, run_info={"run_id": run_id, "created": "2025-01-01T00:00:00", "config_hash": "abc123"},
                   samples={(model, task): [Sample(id=sid, task=task, model=model, metrics=m) for sid, m in rows]
                            for (model, task), rows in (samples or {}).items()})
    return run.path


def task_group(per_model: dict, paired=()):
    return {"kind": "task", "models": per_model, "paired": list(paired), "info": {}}


def std_groups(sft_rouge=0.35, base_rouge=0.25, dpo_judge=70.0, sft_judge=71.0, judge_missing=0):
    return {
        "demo-en": task_group({"base": {"rougeL": mv(base_rouge, (base_rouge - .03, base_rouge + .03)),
                                        "bleu": mv(10.0)},
                               "sft": {"rougeL": mv(sft_rouge, (sft_rouge - .03, sft_rouge + .03)),
                                       "bleu": mv(14.0)},
                               "dpo": {"rougeL": mv(0.33), "bleu": mv(13.0)}}),
        "mmlu-mini": {"kind": "benchmark", "models": {m: {"acc": mv(v, (v - .05, v + .05), n=100)}
                                                      for m, v in (("base", .40), ("sft", .41), ("dpo", .42))},
                      "paired": [], "info": {}},
        "judge": {"kind": "judge", "models": {
            "sft": {"reference-0-100": mv(sft_judge, n=50 - judge_missing, missing=judge_missing)},
            "dpo": {"reference-0-100": mv(dpo_judge, n=50 - judge_missing, missing=judge_missing)}},
            "paired": [], "info": {}},
    }


def rows(run, rules, **kw):
    return evaluate_gates(run, rules, **kw).rows


# --------------------------------------------------------------------------- parsing


def test_parse_rule_forms():
    r = parse_rule("dpo.judge.reference-0-100 >= 60")
    assert isinstance(r, CompareRule)
    assert (r.left.model, r.left.rest, r.op, r.right_ref, r.offset) == ("dpo", "judge.reference-0-100", ">=", None, 60)
    r = parse_rule("dpo.judge >= sft.judge - 2")
    assert (r.right_ref.model, r.right_ref.rest, r.offset) == ("sft", "judge", -2.0)
    r = parse_rule("sft.rougeL<base.rougeL + 0.5")
    assert (r.op, r.offset) == ("<", 0.5)
    assert parse_rule("sft.perplexity <= -1.5e1").offset == -15.0
    r = parse_rule({"rule": "sft.rougeL > base.rougeL", "significant": True, "name": "beats", "max_missing_rate": 0.1})
    assert (r.significant, r.name, r.max_missing_rate) == ("lenient", "beats", 0.1)
    assert parse_rule({"rule": "sft.rougeL > base.rougeL", "significant": "required"}).significant == "required"
    d = parse_rule({"max_drop": {"rougeL": 0.02, "mmlu-mini.acc": 0.01}, "baseline": "main", "significant": False})
    assert isinstance(d, DropRule)
    assert d.limits == {"rougeL": 0.02, "mmlu-mini.acc": 0.01} and d.baseline == "main" and d.significant == "off"


@pytest.mark.parametrize("bad", [
    "sft.rougeL >> 0.3", "sft.rougeL", "sft >= 0.3", "sft.rougeL >= ", "sft.rougeL >= base.rougeL +",
    "sft.rougeL >= 0.3 >= 0.2", "sft.rougeL >= base.rougeL * 2", "", 42,
    {"rule": "sft.rougeL > 0", "significant": "maybe"}, {"rule": "sft.rougeL > 0", "colour": "red"},
    {"name": "x"}, {"max_drop": {"rougeL": -1}}, {"max_drop": []}, {"rule": "sft.x == 1", "significant": "required"},
    {"rule": "sft.rougeL > 0", "max_missing_rate": 2},
])
def test_bad_rule_names_rule_and_grammar(bad):
    with pytest.raises(HarnessError) as ei:
        parse_rule(bad, where="harness.yaml: gates[0]")
    msg = str(ei.value)
    assert "harness.yaml: gates[0]" in msg and "Grammar" in msg and ">=" in msg
    if isinstance(bad, str) and bad:
        assert bad in msg


# --------------------------------------------------------------------------- rule kinds


def test_absolute_rules_pass_and_fail(tmp_path):
    run = write_run(tmp_path, std_groups(sft_rouge=0.35, dpo_judge=55.0))
    r = rows(run, ["sft.rougeL >= 0.30", "dpo.judge.reference-0-100 >= 60", "sft.demo-en.bleu < 14",
                   "base.mmlu-mini.acc == 0.4"])
    assert [x.passed for x in r] == [True, False, False, True]
    assert r[0].actual == pytest.approx(0.35) and r[0].threshold == pytest.approx(0.30)
    assert "55 is not >= 60" in r[1].reason


def test_relative_rules_pass_and_fail(tmp_path):
    run = write_run(tmp_path, std_groups(sft_rouge=0.35, base_rouge=0.25, dpo_judge=70, sft_judge=71))
    r = rows(run, ["sft.rougeL > base.rougeL", "base.rougeL > sft.rougeL", "dpo.judge >= sft.judge - 2",
                   "dpo.judge >= sft.judge + 0.5"])
    assert [x.passed for x in r] == [True, False, True, False]
    assert r[2].threshold == pytest.approx(69.0)


def test_address_resolution(tmp_path):
    groups = std_groups()
    groups["demo-ko"] = task_group({m: {"rougeL": mv(0.1)} for m in ("base", "sft", "dpo")})
    run = write_run(tmp_path, groups)
    # rougeL now lives in two task groups and no 'all': ambiguous
    with pytest.raises(HarnessError, match="several groups.*demo-en.*demo-ko"):
        evaluate_gates(run, ["sft.rougeL >= 0.3"])
    groups["all"] = task_group({m: {"rougeL": mv(0.2)} for m in ("base", "sft", "dpo")})
    (run / "scores.json").write_text(json.dumps({"schema": 1, "run_id": "run-1", "models": ["base", "sft", "dpo"],
                                                 "groups": groups}))
    r = evaluate_gates(run, ["sft.rougeL >= 0.3", "sft.demo-ko.rougeL >= 0.05", "sft.bleu >= 14", "sft.judge >= 71",
                        "sft.reference-0-100 >= 71"]).rows
    assert [x.passed for x in r] == [False, True, True, True, True]
    assert r[0].actual == pytest.approx(0.2)  # the pooled 'all' group


def test_unknown_model_or_metric_lists_known(tmp_path):
    run = write_run(tmp_path, std_groups())
    with pytest.raises(HarnessError) as ei:
        evaluate_gates(run, ["orpo.rougeL >= 0.3"])
    assert "unknown model 'orpo'" in str(ei.value) and "base, sft, dpo" in str(ei.value)
    with pytest.raises(HarnessError) as ei:
        evaluate_gates(run, ["sft.rouge1 >= 0.3"])
    assert "unknown metric 'rouge1'" in str(ei.value) and "demo-en.rougeL" in str(ei.value) \
        and "mmlu-mini.acc" in str(ei.value)
    with pytest.raises(HarnessError, match="unknown metric 'f1' in group 'mmlu-mini'.*acc"):
        evaluate_gates(run, ["sft.mmlu-mini.f1 >= 0.3"])
    with pytest.raises(HarnessError, match="unknown model 'orpo'"):
        evaluate_gates(run, ["sft.rougeL >= orpo.rougeL"])


# --------------------------------------------------------------------------- fail closed


def test_fail_closed_on_missing_scores(tmp_path):
    groups = std_groups()
    groups["demo-en"]["models"]["dpo"] = {}  # task did not run for dpo
    groups["demo-en"]["models"]["sft"]["chrf"] = mv(None, n=0, missing=50)
    run = write_run(tmp_path, groups, config={"tasks": ["demo-en", "demo-ko"], "judge": {"backend": "ollama:x"}})
    r = rows(run, ["sft.demo-ko.rougeL >= 0.1", "dpo.demo-en.rougeL >= 0.1", "sft.chrf >= 1",
                   "sft.rougeL > dpo.rougeL", "base.judge >= 10"])
    assert not any(x.passed for x in r)
    assert all(x.reason.startswith("fail-closed") for x in r)
    assert "demo-ko" in r[0].reason and "did not run" in r[0].reason
    assert "dpo has no scores in group 'demo-en'" in r[1].reason
    assert "has no value" in r[2].reason and "missing=50" in r[2].reason
    assert "dpo has no scores" in r[3].reason
    assert "base has no scores in group 'judge'" in r[4].reason


def test_fail_closed_when_judge_did_not_run(tmp_path):
    groups = std_groups()
    del groups["judge"]
    run = write_run(tmp_path, groups, config={"judge": {"backend": "ollama:qwen"}})
    (r,) = rows(run, ["dpo.judge >= 50"])
    assert not r.passed and "no scores" in r.reason and "did not run" in r.reason
    # judge disabled in the config: still a failed gate, not a silent pass
    run2 = write_run(tmp_path / "b", groups)
    (r2,) = rows(run2, ["dpo.judge.reference-0-100 >= 50"])
    assert not r2.passed and "no judge scores" in r2.reason


def test_judge_missing_rate(tmp_path):
    run = write_run(tmp_path, std_groups(judge_missing=15),  # 15/50 = 30% missing
                    config={"judge": {"backend": "ollama:x", "max_missing_rate": 0.2}})
    r = rows(run, ["dpo.judge >= 60", {"rule": "dpo.judge >= 60", "max_missing_rate": 0.5},
                   "sft.rougeL >= 0.3"])
    assert [x.passed for x in r] == [False, True, True]
    assert "judge verdicts missing for 15/50 (30%) > max_missing_rate 20%" in r[0].reason
    # the default limit comes from the config; a lower limit passed in wins
    run2 = write_run(tmp_path / "b", std_groups(judge_missing=5))  # 10%
    assert evaluate_gates(run2, ["dpo.judge >= 60"]).passed
    assert not evaluate_gates(run2, ["dpo.judge >= 60"], max_missing_rate=0.05).passed


# --------------------------------------------------------------------------- statistical mode


def sig(rule, mode=True):
    return {"rule": rule, "significant": mode}


def test_statistical_absolute_uses_interval(tmp_path):
    groups = std_groups()
    groups["demo-en"]["models"]["sft"]["rougeL"] = mv(0.29, (0.25, 0.33))  # noise-level miss
    groups["demo-en"]["models"]["dpo"]["rougeL"] = mv(0.27, (0.26, 0.28))  # real miss
    run = write_run(tmp_path, groups)
    r = rows(run, ["sft.rougeL >= 0.30", sig("sft.rougeL >= 0.30"), sig("dpo.rougeL >= 0.30"),
                   sig("dpo.rougeL < 0.2"), sig("sft.rougeL >= 0.2", "required"),
                   sig("sft.rougeL >= 0.28", "required"), sig("base.bleu >= 11")])
    assert [x.passed for x in r] == [False, True, False, False, True, False, False]
    assert "within noise" in r[1].reason and "significant violation" in r[2].reason
    assert "point estimate used" in r[6].reason  # no CI stored: falls back to the (stricter) point estimate


def test_statistical_relative_uses_paired_test(tmp_path):
    groups = std_groups()
    g = groups["demo-en"]
    g["models"]["sft"]["rougeL"] = mv(0.31, (0.27, 0.35))
    g["models"]["base"]["rougeL"] = mv(0.32, (0.28, 0.36))
    g["models"]["dpo"]["rougeL"] = mv(0.27, (0.23, 0.31))
    g["paired"] = [pt("rougeL", "sft", "base", -0.01, (-0.03, 0.01)),  # noise
                   pt("rougeL", "base", "dpo", 0.05, (0.02, 0.08), significant=True, p=0.001)]  # real, reversed
    run = write_run(tmp_path, groups)
    r = rows(run, ["sft.rougeL >= base.rougeL", sig("sft.rougeL >= base.rougeL"),
                   "dpo.rougeL >= base.rougeL", sig("dpo.rougeL >= base.rougeL"),
                   sig("base.rougeL > dpo.rougeL", "required"), sig("sft.rougeL > base.rougeL", "required"),
                   sig("dpo.rougeL >= base.rougeL - 0.06")])
    assert [x.passed for x in r] == [False, True, False, False, True, False, True]
    assert "paired test" in r[1].reason and "within noise" in r[1].reason
    assert "[-0.08, -0.02]" in r[3].reason and "significant violation" in r[3].reason


def test_statistical_relative_without_paired_test_uses_intervals(tmp_path):
    groups = std_groups(dpo_judge=68.0, sft_judge=72.0)
    groups["judge"]["models"]["dpo"]["reference-0-100"]["ci"] = [64.0, 72.0]
    groups["judge"]["models"]["sft"]["reference-0-100"]["ci"] = [69.0, 75.0]
    run = write_run(tmp_path, groups)
    r = rows(run, ["dpo.judge >= sft.judge - 2", sig("dpo.judge >= sft.judge - 2"),
                   sig("dpo.judge >= sft.judge + 10")])
    assert [x.passed for x in r] == [False, True, False]
    assert "no paired test" in r[1].reason


# --------------------------------------------------------------------------- baselines


def sampled_run(root: Path, run_id: str, values: dict[str, list[float]], *, models=("base", "sft")) -> Path:
    """A one-task run whose aggregates are the means of the per-sample values (CI = mean +- 2 se)."""
    per_model, samples = {}, {}
    for m in models:
        vals = values[m]
        mean = sum(vals) / len(vals)
        sd = (sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1)) ** 0.5
        half = 2 * sd / len(vals) ** 0.5
        per_model[m] = {"rougeL": mv(mean, (mean - half, mean + half), n=len(vals)),
                        "perplexity": mv(20.0 if m == "base" else 12.0, n=len(vals), hib=False)}
        samples[(m, "demo-en")] = [(f"s{i}", {"rougeL": v}) for i, v in enumerate(vals)]
    return write_run(root, {"demo-en": task_group(per_model)}, models=models, run_id=run_id, samples=samples)


def base_values(n=40, seed=1):
    rnd = random.Random(seed)
    return [rnd.uniform(0.2, 0.6) for _ in range(n)]


def test_save_and_load_baseline(tmp_path):
    vals = base_values()
    run = sampled_run(tmp_path, "r-main", {"base": vals, "sft": [v + 0.05 for v in vals]})
    path = save_baseline(run, "main", out_dir=tmp_path / "baselines")
    assert path == tmp_path / "baselines" / "main.json"
    doc = json.loads(path.read_text())
    assert doc["run_id"] == "r-main" and doc["config_hash"] == "abc123" and doc["models"] == ["base", "sft"]
    assert doc["created"] and doc["groups"]["demo-en"]["models"]["sft"]["rougeL"]["ci"]
    assert doc["samples"]["demo-en"]["sft"]["rougeL"]["demo-en/s3"] == pytest.approx(vals[3] + 0.05)
    b = load_baseline("main", [tmp_path])
    assert b.name == "main" and b.run_id == "r-main" and b.sample_values("demo-en", "base", "rougeL")
    assert load_baseline(str(path)).path == path
    small = load_baseline(save_baseline(run, "small", out_dir=tmp_path / "baselines", max_values=10))
    assert small.samples == {} and small.samples_omitted == ["demo-en"]
    with pytest.raises(HarnessError, match="not allowed"):
        save_baseline(run, "../evil", out_dir=tmp_path)
    with pytest.raises(HarnessError, match="baseline 'nope' not found"):
        load_baseline("nope", [tmp_path])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(HarnessError, match="not a harness baseline"):
        load_baseline(tmp_path / "bad.json")


def test_max_drop_point(tmp_path):
    vals = base_values()
    main = sampled_run(tmp_path / "a", "r-main", {"base": vals, "sft": [v + 0.05 for v in vals]})
    save_baseline(main, "main", out_dir=tmp_path / "baselines")
    # sft dropped 0.01 (ok for 0.02), base dropped 0.05; perplexity (lower is better) of sft unchanged
    cur = sampled_run(tmp_path / "b", "r-new", {"base": [v - 0.05 for v in vals], "sft": [v + 0.04 for v in vals]})
    rep = evaluate_gates(cur, [{"max_drop": {"rougeL": 0.02, "perplexity": 0.5}, "baseline": "main"}], search=[tmp_path])
    by = {x.rule.split(" ")[0]: x for x in rep.rows}
    assert set(by) == {"base.demo-en.rougeL", "sft.demo-en.rougeL", "base.demo-en.perplexity",
                       "sft.demo-en.perplexity"}
    assert not by["base.demo-en.rougeL"].passed and "drop 0.05 > 0.02" in by["base.demo-en.rougeL"].reason
    assert by["sft.demo-en.rougeL"].passed and by["sft.demo-en.perplexity"].passed
    # one model only, via 'model.metric'; threshold = baseline - limit
    (r,) = rows(cur, [{"max_drop": {"sft.rougeL": 0.0}, "baseline": str(tmp_path / "baselines" / "main.json")}])
    assert not r.passed and r.threshold == pytest.approx(sum(vals) / len(vals) + 0.05)


def test_max_drop_lower_is_better_and_missing(tmp_path):
    vals = base_values()
    main = sampled_run(tmp_path / "a", "r-main", {"base": vals, "sft": vals})
    save_baseline(main, "main", out_dir=tmp_path / "baselines")
    cur = sampled_run(tmp_path / "b", "r-new", {"base": vals, "sft": vals})
    s = json.loads((cur / "scores.json").read_text())
    s["groups"]["demo-en"]["models"]["sft"]["perplexity"]["value"] = 13.0  # 12 -> 13: worse by 1
    del s["groups"]["demo-en"]["models"]["base"]["rougeL"]
    (cur / "scores.json").write_text(json.dumps(s))
    r = rows(cur, [{"max_drop": {"sft.perplexity": 0.5, "base.rougeL": 0.1}}], default_baseline="main",
             search=[tmp_path])
    assert not r[0].passed and "drop 1 > 0.5" in r[0].reason and r[0].threshold == pytest.approx(12.5)
    assert not r[1].passed and r[1].reason.startswith("fail-closed") and "base.demo-en.rougeL" in r[1].reason


def noisy(vals, shift, sd, seed):
    rnd = random.Random(seed)
    return [v + shift + rnd.gauss(0, sd) for v in vals]


def test_statistical_drop_paired(tmp_path):
    vals = base_values(60)
    main = sampled_run(tmp_path / "a", "r-main", {"base": vals, "sft": vals})
    save_baseline(main, "main", out_dir=tmp_path / "baselines")
    # base: a noise-level drop (mean ~0.03 > 0.02, but per-sample sd 0.25); sft: a real drop of 0.1 everywhere
    cur = sampled_run(tmp_path / "b", "r-new", {"base": noisy(vals, -0.03, 0.25, 7), "sft": noisy(vals, -0.1, 0.01, 8)})
    s = json.loads((cur / "scores.json").read_text())["groups"]["demo-en"]["models"]
    base_drop = sum(vals) / len(vals) - s["base"]["rougeL"]["value"]
    assert base_drop > 0.02  # planted: the point estimate alone would fail the build
    rule = {"max_drop": {"rougeL": 0.02}, "baseline": "main"}
    point = {x.rule.split(" ")[0]: x for x in rows(cur, [rule], search=[tmp_path])}
    stat = {x.rule.split(" ")[0]: x for x in rows(cur, [{**rule, "significant": True}], search=[tmp_path])}
    assert not point["base.demo-en.rougeL"].passed and not point["sft.demo-en.rougeL"].passed
    assert stat["base.demo-en.rougeL"].passed and "within noise" in stat["base.demo-en.rougeL"].reason
    assert "paired bootstrap over 60 shared samples" in stat["base.demo-en.rougeL"].reason
    assert not stat["sft.demo-en.rougeL"].passed and "significant drop" in stat["sft.demo-en.rougeL"].reason


def test_statistical_drop_unpaired_fallback(tmp_path):
    vals = base_values(60)
    main = sampled_run(tmp_path / "a", "r-main", {"base": vals, "sft": vals})
    save_baseline(main, "main", out_dir=tmp_path / "baselines", max_values=0)  # no per-sample values kept
    cur = sampled_run(tmp_path / "b", "r-new", {"base": noisy(vals, -0.03, 0.25, 7), "sft": noisy(vals, -0.1, 0.01, 8)})
    r = {x.rule.split(" ")[0]: x for x in rows(cur, [{"max_drop": {"rougeL": 0.02}, "significant": True}],
                                               baseline_path="main", search=[tmp_path])}
    assert r["base.demo-en.rougeL"].passed and "current 95% CI" in r["base.demo-en.rougeL"].reason
    assert not r["sft.demo-en.rougeL"].passed


def test_max_drop_input_errors(tmp_path):
    run = write_run(tmp_path, std_groups())
    with pytest.raises(HarnessError, match="max_drop needs a baseline"):
        evaluate_gates(run, [{"max_drop": {"rougeL": 0.1}}])
    with pytest.raises(HarnessError, match="baseline 'gone' not found"):
        evaluate_gates(run, [{"max_drop": {"rougeL": 0.1}, "baseline": "gone"}], search=[tmp_path])
    save_baseline(run, "main", out_dir=tmp_path / "baselines")
    with pytest.raises(HarnessError, match="unknown metric 'rouge9'"):
        evaluate_gates(run, [{"max_drop": {"rouge9": 0.1}, "baseline": "main"}], search=[tmp_path])


# --------------------------------------------------------------------------- outputs and exit codes


def quiet():
    return Console(file=io.StringIO(), width=200, record=True)


def test_gate_main_exit_codes_and_snapshot_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    ok = write_run(tmp_path / "ok", std_groups(), config={"gates": ["sft.rougeL >= 0.3", "sft.rougeL > base.rougeL"]})
    assert gate_main(ok, console=quiet()) == 0
    bad = write_run(tmp_path / "bad", std_groups(), config={"gates": ["sft.rougeL >= 0.3", "dpo.judge >= 90"]})
    con = quiet()
    assert gate_main(bad, console=con) == 1
    text = con.export_text()
    assert "FAIL" in text and "PASS" in text and "1 of 2 gate(s) failed" in text
    broken = write_run(tmp_path / "broken", std_groups(), config={"gates": ["sft.rougeL => 0.3"]})
    with pytest.raises(HarnessError) as ei:
        gate_main(broken, console=quiet())
    assert ei.value.exit_code == 2 and "sft.rougeL => 0.3" in str(ei.value) and "config.yaml" in str(ei.value)
    none = write_run(tmp_path / "none", std_groups())
    with pytest.raises(HarnessError, match="no gate rules"):
        gate_main(none, console=quiet())
    with pytest.raises(HarnessError, match="scores.json"):
        gate_main(tmp_path / "ok", console=quiet())  # not a run dir
    with pytest.raises(HarnessError, match="run directory not found"):
        gate_main(tmp_path / "nowhere", console=quiet())


def test_gate_main_with_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    run = write_run(tmp_path, std_groups(judge_missing=15), config={"gates": ["sft.rougeL >= 0.99"]})
    assert gate_main(run, console=quiet()) == 1
    gate_file = tmp_path / "gates.yaml"
    gate_file.write_text("gates:\n  - sft.rougeL >= 0.3\n  - dpo.judge >= 60\nmax_missing_rate: 0.5\n")
    assert gate_main(run, config=gate_file, console=quiet()) == 0
    gate_file.write_text("gates:\n  - sft.rougeL >= 0.3\n  - dpo.judge >= 60\n")  # judge default 20% < 30%
    assert gate_main(run, config=gate_file, console=quiet()) == 1
    full = tmp_path / "harness.yaml"
    full.write_text(yaml.safe_dump({"models": {"base": {"path": "a"}, "sft": {"path": "b"}},
                                    "gates": ["sft.rougeL > base.rougeL"], "judge": {"max_missing_rate": 0.5}}))
    assert gate_main(run, config=full, console=quiet()) == 0
    gate_file.write_text("gates:\n  - sft.rougeL >= 0.3\ncolour: red\n")
    with pytest.raises(HarnessError, match="unknown key"):
        gate_main(run, config=gate_file, console=quiet())
    gate_file.write_text("gates:\n  - {max_drop: {rougeL: 0.01}}\nbaseline: main\n")
    (tmp_path / "baselines").mkdir()
    save_baseline(run, "main", out_dir=tmp_path / "baselines")
    monkeypatch.chdir(tmp_path.parent)  # the baseline is found next to the gate file
    assert gate_main(run, config=gate_file, console=quiet()) == 0
    assert load_rules(gate_file) == ([{"max_drop": {"rougeL": 0.01}}], "main")
    rep = check_gates(run, gate_file)
    assert rep.passed and rep.baseline == "main" and len(rep.rows) == 3  # rougeL of base, sft, dpo
    with pytest.raises(HarnessError, match="gate config not found"):
        gate_main(run, config=tmp_path / "missing.yaml", console=quiet())


def test_junit_xml(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    run = write_run(tmp_path, std_groups(dpo_judge=55.0), config={"gates": [
        "sft.rougeL >= 0.3", {"rule": "dpo.judge >= 60", "name": "judge-floor"}, "sft.rougeL > base.rougeL",
        "sft.rougeL >= 0.3"]})
    out = tmp_path / "reports" / "gates.xml"
    assert gate_main(run, junit=out, console=quiet()) == 1
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "0"
    cases = suite.findall("testcase")
    names = [c.get("name") for c in cases]
    assert names == ["sft.rougeL >= 0.3", "judge-floor: dpo.judge >= 60", "sft.rougeL > base.rougeL",
                     "sft.rougeL >= 0.3 #2"]
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["judge-floor: dpo.judge >= 60"]
    assert "55 is not >= 60" in failed[0].find("failure").get("message")


def test_junit_xml_junitparser(tmp_path):
    junitparser = pytest.importorskip("junitparser")
    run = write_run(tmp_path, std_groups(dpo_judge=55.0))
    rep = evaluate_gates(run, ["sft.rougeL >= 0.3", "dpo.judge >= 60 ", "sft.bleu > base.bleu"])
    xml = junitparser.JUnitXml.fromfile(str(write_junit(rep, tmp_path / "g.xml")))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].tests == 3 and suites[0].failures == 1
    results = {case.name: [type(r).__name__ for r in case.result] for case in suites[0]}
    assert results["dpo.judge >= 60"] == ["Failure"] and results["sft.rougeL >= 0.3"] == []


def test_step_summary_appended(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run = write_run(tmp_path, std_groups(dpo_judge=55.0), config={"gates": ["sft.rougeL >= 0.3", "dpo.judge >= 60"]})
    assert gate_main(run, console=quiet()) == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "Gates FAILED: 1/2 rules passed" in text and "| ❌ | `dpo.judge >= 60` | 55 | 60 |" in text
    assert gate_main(run, console=quiet()) == 1
    assert summary.read_text().count("Gates FAILED") == 2


def test_markdown_and_table_escape(tmp_path):
    run = write_run(tmp_path, std_groups())
    rep = evaluate_gates(run, [{"rule": "sft.rougeL >= 0.3", "name": "a|b [red]x[/red]"}])
    md = to_markdown(rep)
    assert "a\\|b" in md and "✅ Gates passed: 1/1" in md
    con = quiet()
    con.print(format_table(rep))
    assert "[red]x[/red]" in con.export_text()


def test_misspelled_metric_on_the_demo_run_is_an_input_error(tmp_path):
    """`sft.rougeLL` on a real demo run: exit 2 with a suggestion, not a fail-closed 1 ("configured
    but not run: demo", when expected groups came from the config's suite name)."""
    from typer.testing import CliRunner

    from harness.cli import app

    demo = Path(__file__).parent / "fixtures" / "run_demo"
    gates = tmp_path / "gates.yaml"
    gates.write_text('gates: ["sft.rougeLL >= 0.1"]\n')
    result = CliRunner().invoke(app, ["gate", str(demo), "--config", str(gates)], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "unknown metric 'rougeLL'" in result.output and "did you mean 'rougeL'" in result.output
    gates.write_text('gates: ["sft.rougeL >= 0.1"]\n')
    assert CliRunner().invoke(app, ["gate", str(demo), "--config", str(gates)]).exit_code == 0


def test_misspelled_metric_on_a_run_with_groups_switched_off_is_an_input_error(tmp_path):
    """A run made with `--benchmarks none --judge none` lacks those groups (the gate fails rules on
    them closed, exit 1); a name no group could hold is still a typo: exit 2 with a suggestion."""
    groups = {g: b for g, b in std_groups().items() if g in ("demo-en", "demo-ko", "all")}
    run = write_run(tmp_path, groups, config={"benchmarks": [{"name": "mmlu-mini"}],
                                               "judge": {"backend": "ollama:llama3", "judges": ["reference-0-100"]}})
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "switched_off": ["mmlu-mini", "judge"]}))
    with pytest.raises(HarnessError) as ei:
        evaluate_gates(run, ["sft.rougeLL >= 0.1"])
    assert "unknown metric 'rougeLL'" in str(ei.value) and "did you mean 'rougeL'" in str(ei.value)
    with pytest.raises(HarnessError, match="did you mean 'reference-0-100'"):
        evaluate_gates(run, ["sft.reference-0-10 >= 50"])
    rows = evaluate_gates(run, ["sft.acc >= 0.3", "sft.reference-0-100 >= 50", "sft.mmlu-mini.acc >= 0.3",
                                "sft.rougeL >= 0.1"]).rows
    assert [r.passed for r in rows] == [False, False, False, True]  # switched off: fail closed
    assert "configured but not run" in rows[0].reason or "did not run" in rows[0].reason
