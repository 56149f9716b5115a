"""Task YAML + data file -> Samples: formats, field mapping, filters, languages, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.tasks import BUILTIN_TASKS, find_task_file, known_tasks, load_samples, load_tasks, read_rows


def _jsonl(path: Path, rows: list, extra_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    for at, text in sorted((extra_lines or {}).items()):
        lines.insert(at, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _task(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name}.yaml"
    p.write_text(f"name: {name}\n{body}", encoding="utf-8")
    return p


def _one(folder: Path, name: str, body: str):
    p = _task(folder, name, body)
    tasks = load_tasks([str(p)])
    assert len(tasks) == 1
    return tasks[0]


ROWS = [
    {"instruction": "Give the antonym.", "input": "hot", "output": "cold", "lang": "en", "skill": "antonym"},
    {"instruction": "반대말을 쓰세요.", "input": "덥다", "output": "춥다", "lang": "ko", "skill": "antonym"},
    {"instruction": "Capital of France?", "input": "", "output": "Paris", "lang": "en", "skill": "fact"},
]


def _err(fn, *args, **kwargs) -> str:
    with pytest.raises(HarnessError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, f"error is not one line: {msg!r}"
    return msg


# ------------------------------------------------------------------ task files


def test_task_yaml_relative_data_and_defaults(tmp_path):
    _jsonl(tmp_path / "data" / "rows.jsonl", ROWS)
    task = _one(tmp_path / "tasks", "mine", "data: ../data/rows.jsonl\n")
    assert task.name == "mine" and task.source == str((tmp_path / "tasks" / "mine.yaml").resolve())
    assert task.data_path() == (tmp_path / "tasks").resolve() / "../data/rows.jsonl"
    assert task.language == "auto" and "rouge" in task.metrics and task.fields.reference == "output"
    samples = load_samples(task)
    assert [s.id for s in samples] == ["mine-0000", "mine-0001", "mine-0002"]
    s = samples[0]
    assert (s.task, s.instruction, s.input, s.reference) == ("mine", "Give the antonym.", "hot", "cold")
    assert s.meta == {"lang": "en", "skill": "antonym"}  # known descriptive fields are kept
    assert samples[2].input == ""


def test_task_by_name_from_extra_dir_and_suite_expansion(tmp_path):
    _jsonl(tmp_path / "rows.jsonl", ROWS)
    _task(tmp_path / "tasks", "a", "data: ../rows.jsonl\nfilter: {lang: en}\n")
    _task(tmp_path / "tasks", "b", "data: ../rows.jsonl\nfilter: {lang: ko}\n")
    (tmp_path / "tasks" / "both.yaml").write_text("name: both\nsuite: [a, b]\n")
    (tmp_path / "tasks" / "outer.yaml").write_text("name: outer\nsuite: [both, a]\n")
    extra = [tmp_path / "tasks"]
    assert [t.name for t in load_tasks(["a"], extra)] == ["a"]
    # suites expand (nested too), duplicates are dropped and order kept
    assert [t.name for t in load_tasks(["outer"], extra)] == ["a", "b"]
    assert [t.name for t in load_tasks(["b", "both"], extra)] == ["b", "a"]
    assert {"a", "b", "both", "outer", "demo-en"} <= set(known_tasks(extra))
    assert find_task_file("demo-en") == BUILTIN_TASKS / "demo-en.yaml"


def test_bundled_demo_suite_loads():
    tasks = load_tasks(["demo"])
    assert [t.name for t in tasks] == ["demo-en", "demo-ko", "demo-json", "demo-pref"]
    en, ko, js, pref = (load_samples(t) for t in tasks)
    assert en and ko and js
    assert {s.lang for s in en} == {"en"} and {s.lang for s in ko} == {"ko"}
    assert all(json.loads(s.reference) is not None for s in js)
    # the 63 held-out pairs `demo --retrain` checks; ids are the data's own
    assert len(pref) == 63 and len({s.id for s in pref}) == 63 and tasks[3].type == "preference"
    assert all(s.meta["chosen"] == s.reference and s.meta["rejected"] for s in pref)


def test_unknown_task_lists_known_tasks(tmp_path):
    msg = _err(load_tasks, ["no-such-task"])
    assert "unknown task 'no-such-task'" in msg and "Known tasks: " in msg
    assert "demo-en" in msg and "demo-ko" in msg and "give a path to a task YAML" in msg
    assert "task file not found: missing.yaml" in _err(load_tasks, ["missing.yaml"])


def test_bad_task_files(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\ndata: [a.jsonl\nmetrics: [rouge]\n")
    msg = _err(load_tasks, [str(p)])
    assert f"{p.resolve()}:" in msg and "not valid YAML" in msg
    line = int(msg.split("broken.yaml:")[1].split(":")[0])
    assert 2 <= line <= 4
    p = _task(tmp_path, "typo", "data: a.jsonl\nfeilds: {instruction: q}\n")
    assert "field 'feilds': unknown field" in _err(load_tasks, [str(p)])
    p = _task(tmp_path, "typo2", "data: a.jsonl\nfields: {question: q}\n")
    msg = _err(load_tasks, [str(p)])
    assert "typo2.yaml:3: field 'fields.question': unknown field" in msg and "tasks/README.md" in msg
    p = tmp_path / "noname.yaml"
    p.write_text("data: a.jsonl\n")
    assert "field 'name': Field required" in _err(load_tasks, [str(p)])
    p = tmp_path / "loop.yaml"
    p.write_text("name: loop\nsuite: [loop]\n")
    assert "suite nesting too deep" in _err(load_tasks, ["loop"], [tmp_path])
    p = tmp_path / "empty-suite.yaml"
    p.write_text("name: e\nsuite: []\n")
    assert "field 'suite' must be a non-empty list" in _err(load_tasks, [str(p)])


def test_task_metrics_and_options_are_checked_against_the_metric_registry(tmp_path):
    p = _task(tmp_path, "m1", "data: a.jsonl\nmetrics: [rouge, bleurt]\n")
    msg = _err(load_tasks, [str(p)])
    assert f"{p}: unknown metric 'bleurt'" in msg and "Use one of: rouge, bleu, chrf" in msg
    p = _task(tmp_path, "m2", "data: a.jsonl\nmetrics: [rouge]\nmetric_options: {rouge: {tokeniser: kiwi}}\n")
    msg = _err(load_tasks, [str(p)])
    assert f"{p}: unknown option(s) tokeniser for metric 'rouge'" in msg and "Allowed: tokenizer, use_stemmer" in msg
    p = _task(tmp_path, "m3", "data: a.jsonl\nmetrics: [regex]\nmetric_options: {regex: '.*'}\n")
    assert "options for metric 'regex' must be a mapping" in _err(load_tasks, [str(p)])
    ok = _one(tmp_path, "m4", "data: a.jsonl\nmetrics: [rouge, regex]\n"
                              "metric_options: {rouge: {tokenizer: kiwi}, regex: {pattern: x, normalize_whitespace: true}}\n")
    assert ok.metric_options["rouge"] == {"tokenizer": "kiwi"}


# ------------------------------------------------------------------ fields, formats, filters


def test_custom_field_names_and_ids(tmp_path):
    rows = [{"q": "What is 2+2?", "ctx": "math", "ans": "4", "uid": 17},
            {"q": "Return JSON.", "ctx": None, "ans": {"ok": True, "n": 1}, "uid": 18}]
    _jsonl(tmp_path / "d.jsonl", rows)
    task = _one(tmp_path, "custom", "data: d.jsonl\nfields: {instruction: q, input: ctx, reference: ans, id: uid}\n")
    a, b = load_samples(task)
    assert (a.id, a.instruction, a.input, a.reference) == ("17", "What is 2+2?", "math", "4")
    assert b.id == "18" and b.input == ""  # null input means no input
    assert json.loads(b.reference) == {"ok": True, "n": 1}  # non-string references become JSON text
    no_input = _one(tmp_path, "noin", "data: d.jsonl\nfields: {instruction: q, input: null, reference: ans}\n")
    assert load_samples(no_input)[0].input == ""


def test_missing_field_names_field_line_and_fix(tmp_path):
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "c", "answer": "d"}]
    _jsonl(tmp_path / "d.jsonl", rows, extra_lines={1: ""})  # a blank line: the bad row is on line 3
    task = _one(tmp_path, "miss", "data: d.jsonl\n")
    msg = _err(load_samples, task)
    assert f"{tmp_path / 'd.jsonl'}:3: missing field 'output'" in msg
    assert "has: instruction, answer" in msg
    assert "Map your field names under 'fields:'" in msg and "miss.yaml" in msg


def test_messages_format(tmp_path):
    rows = [
        {"conv": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                  {"role": "user", "content": "Capital of France?"},
                  {"role": "assistant", "content": "Paris"}]},
        {"conv": [{"role": "user", "content": "대한민국의 수도는?"}, {"role": "assistant", "content": "서울입니다"}]},
    ]
    _jsonl(tmp_path / "chat.jsonl", rows)
    task = _one(tmp_path, "chat", "data: chat.jsonl\nfields: {messages: conv}\n")
    a, b = load_samples(task)
    assert (a.instruction, a.input, a.reference) == ("Capital of France?", "", "Paris")
    assert a.meta["system"] == "Answer briefly." and len(a.meta["messages"]) == 4
    assert (b.instruction, b.reference, b.lang) == ("대한민국의 수도는?", "서울입니다", "ko")
    assert b.meta["system"] is None and a.lang == "en"
    _jsonl(tmp_path / "bad.jsonl", [{"conv": [{"role": "user", "content": "no answer"}]}])
    bad = _one(tmp_path, "bad", "data: bad.jsonl\nfields: {messages: conv}\n")
    assert "bad.jsonl:1: the last message must be the assistant's reference answer" in _err(load_samples, bad)
    _jsonl(tmp_path / "bad2.jsonl", [{"conv": "text"}])
    bad2 = _one(tmp_path, "bad2", "data: bad2.jsonl\nfields: {messages: conv}\n")
    assert "bad2.jsonl:1: field 'conv' must be a non-empty list" in _err(load_samples, bad2)


def test_filter_and_limit(tmp_path):
    _jsonl(tmp_path / "d.jsonl", ROWS)
    en = _one(tmp_path, "en", "data: d.jsonl\nfilter: {lang: en}\n")
    assert [s.reference for s in load_samples(en)] == ["cold", "Paris"]
    two = _one(tmp_path, "two", "data: d.jsonl\nfilter: {lang: en, skill: fact}\n")
    assert [s.reference for s in load_samples(two)] == ["Paris"]
    # ids keep the row index of the file, so filtering does not renumber items
    assert [s.id for s in load_samples(two)] == ["two-0002"]
    assert len(load_samples(en, limit=1)) == 1
    capped = _one(tmp_path, "capped", "data: d.jsonl\nlimit: 2\n")
    assert len(load_samples(capped)) == 2 and len(load_samples(capped, limit=1)) == 1
    assert len(load_samples(capped, limit=5)) == 2
    none = _one(tmp_path, "none", "data: d.jsonl\nfilter: {lang: fr}\n")
    assert "task none: no rows left after filter {'lang': 'fr'}" in _err(load_samples, none)


def test_language_auto_and_fixed(tmp_path):
    rows = [{"instruction": "다음 문장을 존댓말로 바꾸세요.", "input": "밥 먹었어?", "output": "진지 드셨어요?"},
            {"instruction": "Translate to English.", "input": "사과", "output": "apple"},
            {"instruction": "Rewrite in passive voice.", "input": "The dog bit the man.",
             "output": "The man was bitten by the dog."},
            {"instruction": "123 + 456 = ?", "input": "", "output": "579"}]
    _jsonl(tmp_path / "d.jsonl", rows)
    auto = _one(tmp_path, "auto", "data: d.jsonl\nlanguage: auto\n")
    assert [s.lang for s in load_samples(auto)] == ["ko", "en", "en", "en"]
    fixed = _one(tmp_path, "fixed", "data: d.jsonl\nlanguage: ko\n")
    assert {s.lang for s in load_samples(fixed)} == {"ko"}
    p = _task(tmp_path, "badlang", "data: d.jsonl\nlanguage: fr\n")
    assert "field 'language'" in _err(load_tasks, [str(p)])


def test_csv_tsv_json_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d.csv").write_text('instruction,input,output\n"Say hi, politely",,Hello\nCount,1 2,3\n',
                                     encoding="utf-8")
    (tmp_path / "d.tsv").write_text("instruction\tinput\toutput\nSay hi\t\tHello\n", encoding="utf-8")
    (tmp_path / "list.json").write_text(json.dumps(ROWS), encoding="utf-8")
    (tmp_path / "wrapped.json").write_text(json.dumps({"version": 1, "data": ROWS}), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    got = {}
    for f in ("d.csv", "d.tsv", "list.json", "wrapped.json", "d.parquet"):
        name = f.replace(".", "_")
        got[f] = load_samples(_one(tmp_path, name, f"data: {f}\n"))
    assert [(s.instruction, s.input, s.reference) for s in got["d.csv"]] == [("Say hi, politely", "", "Hello"),
                                                                             ("Count", "1 2", "3")]
    assert [(s.instruction, s.reference) for s in got["d.tsv"]] == [("Say hi", "Hello")]
    for f in ("list.json", "wrapped.json", "d.parquet"):
        assert [s.reference for s in got[f]] == ["cold", "춥다", "Paris"], f
    assert read_rows(tmp_path / "d.parquet")[1]["lang"] == "ko"
    # a row error in a CSV names the line of the file (header is line 1)
    (tmp_path / "short.csv").write_text("instruction,answer\nA,B\n", encoding="utf-8")
    msg = _err(load_samples, _one(tmp_path, "short", "data: short.csv\n"))
    assert f"{tmp_path / 'short.csv'}:2: missing field 'output'" in msg


def test_bad_data_files(tmp_path):
    path = tmp_path / "d.jsonl"
    _jsonl(path, ROWS[:2], extra_lines={1: "", 2: "{not json"})
    task = _one(tmp_path, "t", "data: d.jsonl\n")
    msg = _err(load_samples, task)
    assert f"{path}:3: not valid JSON" in msg and "Each line must be one JSON object" in msg
    path.write_text('{"instruction": "a", "output": "b"}\n["a", "list"]\n')
    assert f"{path}:2: expected a JSON object, got list" in _err(load_samples, task)
    path.write_text("")
    assert f"{path}: the data file is empty" in _err(load_samples, task)
    path.write_text("\n  \n")
    assert "the data file is empty" in _err(load_samples, task)
    (tmp_path / "h.csv").write_text("instruction,input,output\n")
    assert "the data file is empty" in _err(load_samples, _one(tmp_path, "h", "data: h.csv\n"))
    (tmp_path / "bad.json").write_text('[{"a": 1},\n {"b": }]\n')
    assert "bad.json:2: not valid JSON" in _err(load_samples, _one(tmp_path, "bj", "data: bad.json\n"))
    (tmp_path / "nums.json").write_text("[1, 2]")
    assert "expected a JSON list of objects" in _err(load_samples, _one(tmp_path, "nj", "data: nums.json\n"))
    (tmp_path / "d.txt").write_text("hello")
    assert "unsupported data format '.txt'" in _err(load_samples, _one(tmp_path, "txt", "data: d.txt\n"))
    gone = _one(tmp_path, "gone", "data: nowhere/d.jsonl\n")
    msg = _err(load_samples, gone)
    assert "data file not found" in msg and "nowhere/d.jsonl" in msg and "relative to the task file" in msg


def test_content_hash_tracks_definition_and_data(tmp_path):
    _jsonl(tmp_path / "d.jsonl", ROWS)
    t = _one(tmp_path, "h", "data: d.jsonl\n")
    h1 = t.content_hash()
    assert _one(tmp_path, "h", "data: d.jsonl\n").content_hash() == h1
    assert _one(tmp_path, "h", "data: d.jsonl\nmetrics: [rouge]\n").content_hash() != h1
    _jsonl(tmp_path / "d.jsonl", ROWS[:2])
    assert _one(tmp_path, "h", "data: d.jsonl\n").content_hash() != h1
