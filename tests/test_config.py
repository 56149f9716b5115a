"""harness.yaml validation: round trip, stable hash, and one-line errors naming file:line or the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import api
from harness.config import HarnessConfig, config_from_dict, load_config
from harness.errors import HarnessError

VALID = """\
models:
  base: {path: models/base}
  sft: {adapter: checkpoints/sft, base: base}
  dpo: {adapter: checkpoints/dpo, base: sft, prompt_format: alpaca}
  mine: {responses: answers.jsonl, field: answer}
tasks: [demo-en, my-task.yaml]
benchmarks:
  - mmlu-mini
  - {name: kmmlu-mini, limit: 5}
judge: "ollama:llama3"
generation: {max_new_tokens: 32, stop: ["###"]}
limit: 10
seed: 3
gates:
  - "sft.all.rougeL > base.all.rougeL"
"""


def _write(tmp_path: Path, text: str, name: str = "harness.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _err(tmp_path: Path, text: str) -> str:
    with pytest.raises(HarnessError) as info:
        load_config(_write(tmp_path, text))
    msg = str(info.value)
    assert "\n" not in msg, f"error is not one line: {msg!r}"
    return msg


def test_valid_config_loads_and_round_trips(tmp_path):
    cfg = load_config(_write(tmp_path, VALID))
    assert list(cfg.models) == ["base", "sft", "dpo", "mine"]
    assert cfg.models["sft"].adapter == "checkpoints/sft" and cfg.models["sft"].base == "base"
    assert cfg.models["mine"].responses == "answers.jsonl" and cfg.models["mine"].field == "answer"
    assert cfg.models["dpo"].prompt_format == "alpaca"
    assert cfg.tasks == ["demo-en", "my-task.yaml"]
    assert cfg.generation.max_new_tokens == 32 and cfg.generation.stop == ["###"]
    assert cfg.limit == 10 and cfg.seed == 3
    # relative paths resolve against the config file's folder, not the cwd
    assert Path(cfg.base_dir) == tmp_path.resolve()
    assert cfg.resolve_path("answers.jsonl") == tmp_path.resolve() / "answers.jsonl"
    assert cfg.resolve_path("/abs/file.jsonl") == Path("/abs/file.jsonl")
    # snapshot -> dict -> config is the same config (same hash), and base_dir is not in the snapshot
    snap = cfg.snapshot()
    assert "base_dir" not in snap
    again = config_from_dict(snap, base_dir=cfg.base_dir)
    assert again.snapshot() == snap and again.hash() == cfg.hash()


def test_hash_is_stable_and_content_sensitive(tmp_path):
    a = load_config(_write(tmp_path, VALID, "a.yaml"))
    b = load_config(_write(tmp_path, VALID, "b.yaml"))
    assert a.hash() == b.hash() and len(a.hash()) == 12
    # key order in the YAML does not matter; a changed value does
    reordered = "seed: 3\nlimit: 10\n" + VALID.replace("limit: 10\nseed: 3\n", "")
    assert load_config(_write(tmp_path, reordered, "c.yaml")).hash() == a.hash()
    changed = load_config(_write(tmp_path, VALID.replace("seed: 3", "seed: 4"), "d.yaml"))
    assert changed.hash() != a.hash()


def test_broken_yaml_names_file_and_line(tmp_path):
    msg = _err(tmp_path, "models:\n  base:\n    path: x\n  sft: [unclosed\nlimit: 3\n")
    assert str(tmp_path / "harness.yaml") in msg and "not valid YAML" in msg
    line = int(msg.split("harness.yaml:")[1].split(":")[0])
    assert 4 <= line <= 5  # the unclosed flow sequence starts on line 4; pyyaml notices it on line 5
    msg = _err(tmp_path, "models:\n  base: {path: x}\n\tlimit: 3\n")  # a tab for indentation
    assert "harness.yaml:3: not valid YAML" in msg and "Fix the YAML syntax" in msg


def test_unknown_field_is_named(tmp_path):
    msg = _err(tmp_path, "models:\n  base: {path: x, dtyp: float32}\n")
    assert "field 'models.base.dtyp': unknown field" in msg and str(tmp_path / "harness.yaml") in msg
    msg = _err(tmp_path, "models: {base: {path: x}}\nmax_new_tokens: 8\n")
    assert "field 'max_new_tokens': unknown field" in msg
    msg = _err(tmp_path, "models: {base: {path: x}}\njudge: {backend: none, hots: x}\n")
    assert "field 'judge.hots': unknown field" in msg
    assert "See README 'Configuration'" in msg  # says where to look for the allowed fields


def test_model_sources_are_exclusive(tmp_path):
    msg = _err(tmp_path, "models:\n  m: {path: a, adapter: b}\n")
    assert "field 'models.m'" in msg and "exactly one of 'path', 'adapter' or 'responses'" in msg
    assert "(got path, adapter)" in msg
    msg = _err(tmp_path, "models:\n  m: {dtype: float32}\n")
    assert "field 'models.m'" in msg and "exactly one of" in msg
    msg = _err(tmp_path, "models:\n  m: {path: a, base: b}\n")
    assert "'base' only applies to an 'adapter'" in msg
    msg = _err(tmp_path, "models:\n  m: {path: a, load_in_4bit: true, load_in_8bit: true}\n")
    assert "load_in_4bit / load_in_8bit" in msg


def test_base_loops_and_bad_names(tmp_path):
    msg = _err(tmp_path, "models:\n  a: {adapter: x, base: b}\n  b: {adapter: y, base: a}\n")
    assert "base chain loops: a -> b -> a" in msg
    msg = _err(tmp_path, "models:\n  a: {adapter: x, base: a}\n")
    assert "models.a.base names the model itself" in msg
    msg = _err(tmp_path, "models:\n  a.b: {path: x}\n")
    assert "model name 'a.b' may not contain" in msg
    assert "name at least one model" in _err(tmp_path, "models: {}\n")
    assert "expected a mapping with 'models:'" in _err(tmp_path, "- just\n- a list\n")
    assert "expected a mapping with 'models:'" in _err(tmp_path, "")
    assert "field 'limit'" in _err(tmp_path, "models: {a: {path: x}}\nlimit: 0\n")


def test_missing_config_file(tmp_path):
    with pytest.raises(HarnessError, match=r"config file not found: .*nope\.yaml.*--config"):
        load_config(tmp_path / "nope.yaml")


def test_judge_and_benchmark_string_forms(tmp_path):
    cfg = load_config(_write(tmp_path, VALID))
    assert cfg.judge.backend == "ollama:llama3" and cfg.judge.judges == ["reference-0-100"]
    assert [b.name for b in cfg.benchmarks] == ["mmlu-mini", "kmmlu-mini"]
    assert cfg.benchmarks[0].limit == 10 and cfg.benchmarks[1].limit == 5  # `limit: 10` caps benchmarks too
    none = load_config(_write(tmp_path, "models: {a: {path: x}}\njudge: null\n", "n.yaml"))
    assert none.judge.backend == "none"
    default = load_config(_write(tmp_path, "models: {a: {path: x}}\n", "d.yaml"))
    assert default.judge.backend == "none" and default.benchmarks == [] and default.tasks == []
    msg = _err(tmp_path, "models: {a: {path: x}}\nbenchmarks: [{limit: 3}]\n")
    assert "field 'benchmarks.0.name'" in msg


def test_cli_override(tmp_path):
    cfg = load_config(_write(tmp_path, VALID))
    out = api._override(cfg, tasks=["demo-ko"], limit=2, benchmarks=[], judge=None)
    assert isinstance(out, HarnessConfig)
    assert out.tasks == ["demo-ko"] and out.limit == 2 and out.benchmarks == []
    assert out.judge.backend == "ollama:llama3"  # None means: keep the config's value
    assert out.models == cfg.models and out.base_dir == cfg.base_dir and out.seed == 3
    assert out.hash() != cfg.hash()
    assert cfg.tasks == ["demo-en", "my-task.yaml"] and cfg.limit == 10  # the original is untouched
    assert api._override(cfg).hash() == cfg.hash()
    judged = api._override(cfg, judge={**cfg.judge.model_dump(), "backend": "none", "fallback": None})
    assert judged.judge.backend == "none"
    with pytest.raises(HarnessError, match=r"command-line flags: field 'limit'"):
        api._override(cfg, limit=0)


def test_api_load_config_accepts_a_config_object(tmp_path):
    cfg = load_config(_write(tmp_path, VALID))
    assert api.load_config(cfg) is cfg
    assert api.load_config(tmp_path / "harness.yaml").hash() == cfg.hash()


def test_every_config_error_is_listed_none_hidden(tmp_path):
    """A typo in a top-level key (``modles:``) and every other problem are all in the one line,
    each with its place; nothing is summarised as "(+N more)"."""
    msg = _err(tmp_path, "modles:\n  base: {path: x}\ntasks: [t]\ngenration: {max_new_tokens: 4}\nseed: x\n"
                         "limit: 0\n")
    for part in ("harness.yaml:1: field 'modles': unknown field (did you mean 'models'?)",
                 "harness.yaml:4: field 'genration': unknown field (did you mean 'generation'?)",
                 "field 'models': Field required", "harness.yaml:5: field 'seed'", "harness.yaml:6: field 'limit'"):
        assert part in msg, msg
    assert "more)" not in msg


def test_limit_caps_every_benchmark(tmp_path):
    """``limit`` (``--limit`` / ``-n``) applies to benchmarks: each keeps the smaller limit; the
    limit is in the benchmark's entry, so it is in the unit key and the config hash."""
    cfg = load_config(_write(tmp_path, "models: {a: {path: x}}\nbenchmarks: [mmlu-mini, {name: kmmlu-mini, "
                                       "limit: 30}, {name: hellaswag-mini, limit: 2}]\n"))
    assert [b.limit for b in cfg.benchmarks] == [None, 30, 2]
    limited = api._override(cfg, limit=4)
    assert [b.limit for b in limited.benchmarks] == [4, 4, 2]
    assert limited.hash() != cfg.hash()
    assert limited.snapshot()["benchmarks"][0]["limit"] == 4  # what the run directory records


def test_benchmarks_named_on_the_command_line_keep_their_settings(tmp_path):
    cfg = load_config(_write(tmp_path, "models: {a: {path: x}}\nbenchmarks: [{name: mmlu-mini, limit: 30, "
                                       "batch_size: 8, num_fewshot: 2}]\n"))
    entries = api.benchmark_entries(cfg, ["mmlu-mini", "kmmlu-mini", "none"])
    assert entries[0] == cfg.benchmarks[0].model_dump(mode="json") and entries[1] == {"name": "kmmlu-mini"}
    out = api._override(cfg, benchmarks=entries, limit=4)
    assert [(b.name, b.limit, b.batch_size, b.num_fewshot) for b in out.benchmarks] == \
        [("mmlu-mini", 4, 8, 2), ("kmmlu-mini", 4, 16, 0)]
    assert api.benchmark_entries(cfg, ["none"]) == []
