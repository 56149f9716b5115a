"""Deterministic generator of the bundled bilingual (Korean/English) demo data.

Writes, into one folder (``harness/demo/data`` in the package):

- ``instructions.jsonl``: every item, Alpaca fields ``instruction``, ``input`` (may be ""),
  ``output`` plus ``id``, ``skill``, ``lang`` (ko|en), ``format`` (text|json) and ``meta``
  (the generator's parameters for computed items: arithmetic and unit conversion);
- ``sft_train.jsonl`` / ``sft_val.jsonl`` / ``test.jsonl``: a split stratified by (lang, skill);
- ``dpo_train.jsonl`` / ``dpo_val.jsonl``: preference rows built from the SFT train items only;
- ``dpo_test.jsonl``: preference rows built from the test items (preference accuracy).

Answers are kept short (a word, a number with its unit, one sentence, or one line of JSON) so a
135M model fine-tuned for minutes on a CPU measurably improves over its base.

The hand-written tables (sentences, words, facts, headlines, units) live in
``demo_tables.json`` next to this file; this module only generates and splits.

Regenerate with ``python -m harness.data.demo_data --out harness/demo/data``; the output is
byte-for-byte identical for the same seed.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import read_json

SEED = 1234
FILES = ("instructions", "sft_train", "sft_val", "test", "dpo_train", "dpo_val", "dpo_test")
COUNTS = {"arithmetic": 36, "unit": 36}  # generated items per language
TABLES_FILE = Path(__file__).with_name("demo_tables.json")


def load_tables(path: str | Path = TABLES_FILE) -> dict[str, Any]:
    """The hand-written tables (``demo_tables.json``): each table's rows as lists of strings,
    checked against its ``columns``; word lists, instructions and padding as they are."""
    data = read_json(path, what="demo data tables")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and "rows" in value:
            width = len(value["columns"])
            for i, row in enumerate(value["rows"]):
                if len(row) != width or not all(isinstance(c, str) for c in row):
                    raise HarnessError(f"{path}: {key} row {i + 1} must be {width} strings "
                                       f"({', '.join(value['columns'])}), got {row!r}",
                                       fix="Write one string per column (numbers in quotes).")
            out[key] = value["rows"]
        else:
            out[key] = value
    return out


# --- hand-written tables (demo_tables.json) ------------------------------------------------
_T = load_tables()
EN_PASSIVE = _T["en_passive"]    # subject | past tense | past participle | object | s/p object
KO_POLITE = _T["ko_polite"]      # 반말 | 존댓말(해요체)
EN_ANTONYMS = _T["en_antonyms"]
KO_ANTONYMS = _T["ko_antonyms"]
EN_SPELLING = _T["en_spelling"]  # misspelled | correct
KO_SPELLING = _T["ko_spelling"]
CAPITALS = _T["capitals"]        # English country (as used in a sentence) | capital | 나라 | 수도
EN_FACTS = _T["en_facts"]        # question | answer
KO_FACTS = _T["ko_facts"]
KO_NEWS = _T["ko_news"]          # headline | is_stock_related (1/0) | summary
EN_NEWS = _T["en_news"]
UNITS = _T["units"]              # key | en from | en to | ko from | ko to | factor | op (mul / div)
EN_NAMES, EN_ITEMS, EN_GOODS = _T["en_names"], _T["en_items"], _T["en_goods"]
KO_NAMES, KO_ITEMS, KO_GOODS = _T["ko_names"], _T["ko_items"], _T["ko_goods"]  # goods: item | counter
INSTRUCTIONS = {(lang, skill): text for lang, by_skill in _T["instructions"].items()
                for skill, text in by_skill.items()}
PADDING = _T["padding"]  # lang -> [before, after] the correct answer: the "rambling" rejected answers


# --- helpers ----------------------------------------------------------------------------
def josa(word: str, with_final: str, without_final: str) -> str:
    """Attach the Korean particle that fits the last syllable (e.g. 사과를 / 귤을)."""
    ch = word[-1]
    final = "가" <= ch <= "힣" and (ord(ch) - 0xAC00) % 28 != 0
    return word + (with_final if final else without_final)


def fmt(x: float) -> str:
    return f"{x:.10g}"


def arith_answer(lang: str, meta: dict) -> str:
    """The reference answer text for an arithmetic item (also used by the tests)."""
    n, unit = meta["answer"], meta["unit"]
    if lang == "ko":
        return f"{n:,}원" if unit == "원" else f"{n}{unit}"
    return f"{n} {unit}"


def compute_arith(meta: dict) -> int:
    a, b, op = meta["a"], meta["b"], meta["op"]
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b, "price": a * b}[op]


def compute_unit(meta: dict) -> float:
    v, f, op = meta["value"], meta["factor"], meta["op"]
    if op == "c2f":
        return v * 9 / 5 + 32
    return v * f if op == "mul" else v / f


def _item(lang, skill, instruction, inp, output, meta=None):
    return {"instruction": instruction, "input": inp, "output": output, "skill": skill, "lang": lang,
            "format": "json" if skill == "classify" else "text", "meta": meta or {}}


# --- item builders ----------------------------------------------------------------------
def _fixed(lang, skill, pairs):
    return [_item(lang, skill, INSTRUCTIONS[lang, skill], a, b) for a, b in pairs]


def _passive():
    pairs = []
    for subj, past, pp, obj, num in EN_PASSIVE:
        active = f"{subj[0].upper()}{subj[1:]} {past} {obj}."
        passive = f"{obj[0].upper()}{obj[1:]} {'were' if num == 'p' else 'was'} {pp} by {subj}."
        pairs.append((active, passive))
    return pairs


def _arithmetic(rng, lang, n):
    ops = ["add", "sub", "mul", "div", "price"]
    out, seen, i = [], set(), 0
    while len(out) < n:  # distinct questions only
        op = ops[i % len(ops)]
        i += 1
        if op == "add":
            a, b = rng.randint(3, 60), rng.randint(2, 40)
        elif op == "sub":
            a = rng.randint(20, 90)
            b = rng.randint(2, a - 2)
        elif op == "mul":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
        elif op == "div":
            b = rng.randint(2, 9)
            a = b * rng.randint(2, 12)
        else:
            a = rng.choice([300, 500, 700, 800, 1000, 1200, 1500]) if lang == "ko" else rng.randint(2, 20)
            b = rng.randint(2, 9)
        meta = {"op": op, "a": a, "b": b, "answer": compute_arith({"op": op, "a": a, "b": b})}
        if lang == "en":
            name, item = rng.choice(EN_NAMES), rng.choice(EN_ITEMS)
            q = {
                "add": f"{name} has {a} {item}s and buys {b} more. How many {item}s does {name} have now?",
                "sub": f"{name} had {a} {item}s and gave {b} to a friend. How many {item}s are left?",
                "mul": f"There are {a} boxes with {b} {item}s in each box. How many {item}s are there in total?",
                "div": f"A teacher shares {a} {item}s equally among {b} children. "
                       f"How many {item}s does each child get?",
            }
            if op == "price":
                good = rng.choice(EN_GOODS)
                q["price"] = f"One {good} costs {a} dollars. How much do {b} {good}s cost?"
            meta["unit"] = "dollars" if op == "price" else f"{item}s"
        else:
            name, item = rng.choice(KO_NAMES), rng.choice(KO_ITEMS)
            q = {
                "add": f"{josa(name, '은', '는')} {josa(item, '을', '를')} {a}개 가지고 있었는데 {b}개를 더 "
                       f"샀습니다. {josa(item, '은', '는')} 모두 몇 개입니까?",
                "sub": f"{josa(name, '은', '는')} {item} {a}개 중에서 {b}개를 친구에게 주었습니다. "
                       f"남은 {josa(item, '은', '는')} 몇 개입니까?",
                "mul": f"한 상자에 {josa(item, '이', '가')} {b}개씩 들어 있습니다. {a}상자에는 "
                       f"{josa(item, '이', '가')} 모두 몇 개 들어 있습니까?",
                "div": f"{item} {a}개를 {b}명이 똑같이 나누어 가지면 한 사람이 몇 개씩 가집니까?",
            }
            if op == "price":
                good, cnt = rng.choice(KO_GOODS)
                q["price"] = f"{good} 한 {cnt}의 가격은 {a:,}원입니다. {good} {b}{josa(cnt, '은', '는')} 모두 얼마입니까?"
            meta["unit"] = "원" if op == "price" else "개"
        if q[op] not in seen:
            seen.add(q[op])
            out.append(_item(lang, "arithmetic", q[op], "", arith_answer(lang, meta), meta))
    return out


def unit_answer(lang: str, meta: dict) -> str:
    ans = fmt(meta["answer"])
    if meta["op"] == "c2f":
        return f"{ans} degrees Fahrenheit" if lang == "en" else f"화씨 {ans}도"
    return f"{ans} {meta['to']}" if lang == "en" else f"{ans}{meta['to']}"


def _units(rng, lang, n):
    out, seen, i = [], set(), 0
    while len(out) < n:  # distinct questions only
        i += 1
        if i % 6 == 0:
            c = rng.choice(range(-20, 45, 5))
            meta = {"op": "c2f", "value": c, "factor": None, "to": "F"}
            q = (f"Convert {c} degrees Celsius to Fahrenheit." if lang == "en"
                 else f"섭씨 {c}도는 화씨 몇 도입니까?")
        else:
            _, ef, et, kf, kt, factor, op = rng.choice(UNITS)
            factor = int(factor)
            if op == "mul":
                value = rng.randint(2, 12)
            else:
                value = int(rng.choice([0.5, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7.5, 8]) * factor)
            meta = {"op": op, "value": value, "factor": factor, "to": et if lang == "en" else kt}
            if lang == "en":
                q = f"Convert {value} {ef} to {et}."
            else:
                q = f"{value}{josa(kf, '은', '는')} {'며칠' if kt == '일' else '몇 ' + kt}입니까?"
        if q in seen:
            continue
        seen.add(q)
        ans = compute_unit(meta)
        meta["answer"] = int(ans) if float(ans).is_integer() else ans
        out.append(_item(lang, "unit", q, "", unit_answer(lang, meta), meta))
    return out


def _news(lang, rows):
    out = []
    for headline, label, summary in rows:
        ans = json.dumps({"is_stock_related": label == "1", "summary": summary}, ensure_ascii=False)
        out.append(_item(lang, "classify", INSTRUCTIONS[lang, "classify"], headline, ans))
    return out


def build_items(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    caps = rng.sample(CAPITALS, 26), rng.sample(CAPITALS, 26)
    items = (
        _fixed("en", "rewrite", _passive()) + _fixed("ko", "rewrite", KO_POLITE)
        + _fixed("en", "antonym", EN_ANTONYMS) + _fixed("ko", "antonym", KO_ANTONYMS)
        + _fixed("en", "spelling", EN_SPELLING) + _fixed("ko", "spelling", KO_SPELLING)
        + [_item("en", "fact", f"What is the capital of {c[0]}?", "", c[1]) for c in caps[0]]
        + [_item("en", "fact", q, "", a) for q, a in EN_FACTS]
        + [_item("ko", "fact", f"{c[2]}의 수도는 어디입니까?", "", c[3]) for c in caps[1]]
        + [_item("ko", "fact", q, "", a) for q, a in KO_FACTS]
        + _arithmetic(rng, "en", COUNTS["arithmetic"]) + _arithmetic(rng, "ko", COUNTS["arithmetic"])
        + _units(rng, "en", COUNTS["unit"]) + _units(rng, "ko", COUNTS["unit"])
        + _news("en", EN_NEWS) + _news("ko", KO_NEWS)
    )
    seen, unique, per_group = set(), [], {}
    for it in items:  # generated items can repeat: keep the first of each instruction+input
        key = (it["instruction"], it["input"])
        if key in seen:
            continue
        seen.add(key)
        k = per_group[it["lang"], it["skill"]] = per_group.get((it["lang"], it["skill"]), 0) + 1
        unique.append({"id": f"{it['lang']}-{it['skill']}-{k:03d}", **it})
    return unique


# --- splits and preference pairs --------------------------------------------------------
def split_items(items, seed: int = SEED, test_frac=0.10, val_frac=0.05):
    """Stratified by (lang, skill): every split holds every skill of both languages."""
    rng = random.Random(seed + 1)
    groups: dict[tuple, list] = {}
    for it in items:
        groups.setdefault((it["lang"], it["skill"]), []).append(it)
    train, val, test = [], [], []
    for key in sorted(groups):
        g = list(groups[key])
        rng.shuffle(g)
        frac = test_frac * 2 if key[1] == "classify" else test_frac  # demo-json needs enough rows
        n_test, n_val = max(3, round(len(g) * frac)), max(2, round(len(g) * val_frac))
        test += g[:n_test]
        val += g[n_test:n_test + n_val]
        train += g[n_test + n_val:]
    rng.shuffle(train)
    return train, sorted(val, key=lambda it: it["id"]), sorted(test, key=lambda it: it["id"])


def _pool_key(it):
    """Wrong facts and antonyms come from answers of the same kind (a capital for a capital)."""
    capital = it["skill"] == "fact" and any(it["output"] in (c[1], c[3]) for c in CAPITALS)
    return it["lang"], it["skill"], capital


def _wrong(rng, it, pools):
    """A wrong answer in the right format."""
    skill, lang, meta, out = it["skill"], it["lang"], it["meta"], it["output"]
    if skill in ("rewrite", "spelling"):
        return it["input"]  # left unchanged
    if skill == "arithmetic":
        step = 100 if meta["unit"] == "원" else 1
        delta = step * rng.choice([d for d in (-10, -3, -2, -1, 1, 2, 3, 10) if meta["answer"] + step * d > 0])
        return arith_answer(lang, {**meta, "answer": meta["answer"] + delta})
    if skill == "unit":
        if meta["op"] == "c2f":
            wrong = meta["value"]  # the Celsius number, unconverted
        else:
            wrong = meta["answer"] * 10 if meta["op"] == "mul" else meta["value"]
        return unit_answer(lang, {**meta, "answer": wrong})
    if skill == "classify":
        obj = json.loads(out)
        obj["is_stock_related"] = not obj["is_stock_related"]
        return json.dumps(obj, ensure_ascii=False)
    return rng.choice([a for a in pools[_pool_key(it)] if a != out])  # fact / antonym


def _off_format(rng, it):
    obj = json.loads(it["output"])
    label, summary = obj["is_stock_related"], obj["summary"]
    variants = [
        json.dumps({"is_stock_related": label}),                              # missing field
        f"{{'is_stock_related': {label}, 'summary': '{summary}'}}",           # not JSON
        (("Yes" if label else "No") if it["lang"] == "en" else ("네" if label else "아니요"))
        + f", {summary}",                                                     # plain text
    ]
    return rng.choice(variants)


def preference_rows(items, seed: int, pools):
    rng = random.Random(seed)
    rows = []
    for it in items:
        kinds = ["wrong", "off_format", "rambling"] if it["skill"] == "classify" else ["wrong"] * 3 + ["rambling"] * 2
        kind = rng.choice(kinds)
        if kind == "wrong":
            rejected = _wrong(rng, it, pools)
        elif kind == "off_format":
            rejected = _off_format(rng, it)
        else:
            head, tail = rng.choice(PADDING[it["lang"]])
            rejected = head + it["output"] + tail
        prompt = it["instruction"] + (f"\n\n{it['input']}" if it["input"] else "")
        rows.append({"id": it["id"], "prompt": prompt, "chosen": it["output"], "rejected": rejected,
                     "instruction": it["instruction"], "input": it["input"], "lang": it["lang"],
                     "skill": it["skill"], "rejected_kind": kind})
    return rows


def build(seed: int = SEED) -> dict[str, list[dict]]:
    items = build_items(seed)
    pools: dict[tuple, list] = {}
    for it in items:
        pools.setdefault(_pool_key(it), []).append(it["output"])
    train, val, test = split_items(items, seed)
    dpo = preference_rows(train, seed + 2, pools)
    n_val = max(16, len(dpo) // 20)
    return {"instructions": items, "sft_train": train, "sft_val": val, "test": test,
            "dpo_train": dpo[n_val:], "dpo_val": dpo[:n_val],
            "dpo_test": preference_rows(test, seed + 3, pools)}


def write(out_dir, seed: int = SEED) -> dict[str, int]:
    """Write every file into ``out_dir``; returns the row count of each."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in build(seed).items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / f"{name}.jsonl").write_text(text, encoding="utf-8", newline="\n")
        counts[name] = len(rows)
    return counts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Write the bundled bilingual demo data (deterministic).")
    ap.add_argument("--out", default="harness/demo/data", help="output folder")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    for name, n in write(args.out, args.seed).items():
        print(f"{name}.jsonl: {n}")


if __name__ == "__main__":
    main()
