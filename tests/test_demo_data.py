"""The bundled demo data: deterministic, correct, well split (no model, no network, < 1 s)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harness.data import demo_data

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "harness" / "demo" / "data"
TASKS = ROOT / "harness" / "demo" / "tasks"


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def files() -> dict[str, list[dict]]:
    return {name: load(name) for name in demo_data.FILES}


def key(row: dict) -> tuple[str, str]:
    return row["instruction"], row["input"]


def test_regenerates_byte_for_byte(tmp_path):
    demo_data.main(["--out", str(tmp_path)])
    for name in demo_data.FILES:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (DATA / f"{name}.jsonl").read_bytes(), name


def test_counts_and_balance(files):
    items = files["instructions"]
    assert len(items) >= 400
    langs = Counter(it["lang"] for it in items)
    assert set(langs) == {"ko", "en"} and min(langs.values()) / len(items) > 0.4
    skills = {it["skill"] for it in items}
    assert skills == {"rewrite", "antonym", "spelling", "arithmetic", "fact", "unit", "classify"}
    assert len(files["dpo_train"]) + len(files["dpo_val"]) >= 300
    assert len(files["test"]) >= 48
    assert len({it["id"] for it in items}) == len(items)


def test_schema(files):
    for it in files["instructions"]:
        assert list(it) == ["id", "instruction", "input", "output", "skill", "lang", "format", "meta"]
        assert it["instruction"] and it["output"] and isinstance(it["input"], str)
        assert it["format"] == ("json" if it["skill"] == "classify" else "text")
    for name in ("dpo_train", "dpo_val", "dpo_test"):
        for r in files[name]:
            assert {"prompt", "chosen", "rejected", "lang", "skill", "instruction", "input"} <= set(r)
            assert r["prompt"] == r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")


def test_splits_are_a_disjoint_partition(files):
    train, val, test = (files[n] for n in ("sft_train", "sft_val", "test"))
    keys = [set(map(key, rows)) for rows in (train, val, test)]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    assert len(set(map(key, files["instructions"]))) == len(files["instructions"])
    assert sorted(it["id"] for it in train + val + test) == sorted(it["id"] for it in files["instructions"])


def test_every_split_spans_languages_and_json(files):
    for name in ("sft_train", "sft_val", "test", "dpo_train", "dpo_val", "dpo_test"):
        rows = files[name]
        assert {r["lang"] for r in rows} == {"ko", "en"}, name
        assert {r["lang"] for r in rows if r["skill"] == "classify"} == {"ko", "en"}, name
    assert {(r["lang"], r["skill"]) for r in files["test"]} == {
        (r["lang"], r["skill"]) for r in files["instructions"]}


def test_preference_rows_come_from_the_right_split(files):
    train, test = set(map(key, files["sft_train"])), set(map(key, files["test"]))
    for r in files["dpo_train"] + files["dpo_val"]:
        assert key(r) in train
    for r in files["dpo_test"]:
        assert key(r) in test
    by_key = {key(it): it["output"] for it in files["instructions"]}
    for name in ("dpo_train", "dpo_val", "dpo_test"):
        for r in files[name]:
            assert r["chosen"] == by_key[key(r)]
            assert r["rejected"] != r["chosen"]
            assert r["rejected_kind"] in {"wrong", "off_format", "rambling"}
            if r["rejected_kind"] == "rambling":
                assert r["chosen"] in r["rejected"] and len(r["rejected"]) > len(r["chosen"]) + 20


def test_json_answers_parse(files):
    json_items = [it for it in files["instructions"] if it["format"] == "json"]
    assert {it["lang"] for it in json_items} == {"ko", "en"}
    labels = Counter()
    for it in json_items:
        obj = json.loads(it["output"])
        assert set(obj) == {"is_stock_related", "summary"}
        assert isinstance(obj["is_stock_related"], bool)
        assert isinstance(obj["summary"], str) and 0 < len(obj["summary"]) <= 40
        labels[obj["is_stock_related"]] += 1
    assert labels[True] == labels[False]
    for r in files["dpo_train"] + files["dpo_test"]:
        if r["skill"] == "classify" and r["rejected_kind"] == "off_format":
            try:
                obj = json.loads(r["rejected"])
            except json.JSONDecodeError:
                continue
            assert not (isinstance(obj, dict) and {"is_stock_related", "summary"} <= set(obj))


def _fmt(x) -> str:
    return f"{x:.10g}"


def test_arithmetic_recomputes(files):
    ops = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "div": lambda a, b: a / b, "price": lambda a, b: a * b}
    items = [it for it in files["instructions"] if it["skill"] == "arithmetic"]
    assert {it["meta"]["op"] for it in items} == set(ops)
    for it in items:
        m = it["meta"]
        value = ops[m["op"]](m["a"], m["b"])
        assert value == m["answer"] and value == int(value) and value > 0
        assert str(m["a"]) in it["instruction"].replace(",", "") and str(m["b"]) in it["instruction"]
        if it["lang"] == "en":
            assert it["output"] == f"{int(value)} {m['unit']}"
        else:
            assert it["output"].replace(",", "") == f"{int(value)}{m['unit']}"


def test_units_recompute(files):
    items = [it for it in files["instructions"] if it["skill"] == "unit"]
    assert {it["meta"]["op"] for it in items} == {"mul", "div", "c2f"}
    for it in items:
        m = it["meta"]
        if m["op"] == "c2f":
            v = m["value"] * 9 / 5 + 32
        else:
            v = m["value"] * m["factor"] if m["op"] == "mul" else m["value"] / m["factor"]
        assert v == m["answer"]
        assert str(m["value"]) in it["instruction"]
        num = _fmt(v)
        if m["op"] == "c2f":
            assert it["output"] == (f"{num} degrees Fahrenheit" if it["lang"] == "en" else f"화씨 {num}도")
        else:
            assert it["output"] == (f"{num} {m['to']}" if it["lang"] == "en" else f"{num}{m['to']}")


def test_wrong_numbers_are_wrong(files):
    for r in files["dpo_train"] + files["dpo_val"] + files["dpo_test"]:
        if r["skill"] in ("arithmetic", "unit") and r["rejected_kind"] == "wrong":
            assert r["rejected"].replace(",", "") != r["chosen"].replace(",", "")


def test_korean_particles():
    assert demo_data.josa("사과", "을", "를") == "사과를"
    assert demo_data.josa("귤", "을", "를") == "귤을"
    assert demo_data.josa("킬로그램", "은", "는") == "킬로그램은"


def test_answers_are_short(files):
    for it in files["instructions"]:
        limit = 80 if it["format"] == "json" else 50
        assert len(it["output"]) <= limit, it["id"]


def test_task_yamls():
    for name, lang in (("demo-en", "en"), ("demo-ko", "ko"), ("demo-json", "auto")):
        spec = yaml.safe_load((TASKS / f"{name}.yaml").read_text(encoding="utf-8"))
        assert spec["name"] == name and spec["language"] == lang
        data = (TASKS / spec["data"]).resolve()
        assert data == (DATA / "test.jsonl").resolve()
        rows = [r for r in load("test") if all(r[k] == v for k, v in spec["filter"].items())]
        assert len(rows) >= 12, name
        if name == "demo-json":
            assert {"json", "exact_match"} <= set(spec["metrics"])
            assert all(r["format"] == "json" for r in rows)
        else:
            assert all(r["lang"] == lang and r["format"] == "text" for r in rows)
    suite = yaml.safe_load((TASKS / "demo.yaml").read_text(encoding="utf-8"))
    assert suite == {"name": "demo", "description": suite.get("description"),
                     "suite": ["demo-en", "demo-ko", "demo-json", "demo-pref"]}
    pref = yaml.safe_load((TASKS / "demo-pref.yaml").read_text(encoding="utf-8"))
    assert pref["type"] == "preference" and (TASKS / pref["data"]).resolve() == (DATA / "dpo_test.jsonl").resolve()


def test_tables_ship_as_package_data():
    """demo_tables.json is read at import time: the wheel must carry it (pyproject package-data)."""
    import fnmatch
    import re

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on Python 3.10
    section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    globs = re.findall(r'"([^"]+)"', re.search(r"^harness\s*=\s*\[(.*?)\]", section, re.M | re.S).group(1))
    rel = demo_data.TABLES_FILE.relative_to(ROOT / "harness").as_posix()
    assert any(fnmatch.fnmatch(rel, g) for g in globs), (rel, globs)


def test_a_bad_table_row_names_the_file_and_row(tmp_path):
    from harness.errors import HarnessError

    bad = json.loads(demo_data.TABLES_FILE.read_text(encoding="utf-8"))
    bad["units"]["rows"][2] = ["cm_mm", "centimeters", "millimeters", "센티미터", "밀리미터", 10, "mul"]
    path = tmp_path / "tables.json"
    path.write_text(json.dumps(bad, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(HarnessError, match=r"tables\.json: units row 3 must be 7 strings") as exc:
        demo_data.load_tables(path)
    assert "\n" not in str(exc.value)
    assert demo_data.load_tables()["units"] == demo_data.UNITS
