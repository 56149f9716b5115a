"""File helpers every stage shares: atomic writes, JSON / JSONL / YAML reads with locations.

- Writes go to a temporary file in the target's folder and are moved into place with
  ``os.replace``, so a crash never leaves a half-written file (resume relies on it).
- Reads turn every problem into a ``HarnessError`` naming the place (``file:line``, or the
  byte offset of text that is not UTF-8) and what to do.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

# mkstemp creates files 0600; stored files get the usual mode (0666 minus the process umask)
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


# ---------------------------------------------------------------------------- JSON values

def jsonable(obj: Any) -> Any:
    """Records (``to_dict`` / dataclasses), Paths, numpy scalars; NaN and inf become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return jsonable(obj.item())
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON")


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(jsonable(obj), ensure_ascii=False, indent=indent, allow_nan=False)


# ---------------------------------------------------------------------------- atomic writes

def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (parents created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return write_text(path, dumps(obj, indent=indent) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    return write_text(path, "".join(dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------------------- reads

def read_text(path: str | os.PathLike, *, what: str = "file", encoding: str = "utf-8",
              fix: str | None = None) -> str:
    """A text file's content; missing files and undecodable bytes are one-line errors."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"{what} not found: {p}", fix=fix) from None
    except IsADirectoryError:
        raise HarnessError(f"{p}: is a folder, expected a {what}", fix=fix) from None
    except OSError as err:
        raise HarnessError(f"{p}: cannot read ({err.strerror or err})", fix=fix) from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise HarnessError(f"{p}:{line}: not valid {encoding} text (byte offset {err.start}: "
                           f"{data[err.start:err.start + 4]!r})",
                           fix="Save the file as UTF-8, or set `encoding:` on the task "
                               "(e.g. encoding: cp949).") from None
    except LookupError:
        raise HarnessError(f"{p}: unknown text encoding {encoding!r}",
                           fix="Use a Python codec name such as utf-8, cp949 or euc-kr.") from None
    return text.removeprefix("\ufeff")


def read_json(path: str | os.PathLike, *, what: str = "JSON file", fix: str | None = None,
              encoding: str = "utf-8") -> Any:
    p = Path(path)
    text = read_text(p, what=what, encoding=encoding, fix=fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise HarnessError(f"{p}:{err.lineno}: not valid JSON ({err.msg})", fix=fix) from None


def read_jsonl_located(path: str | os.PathLike, *, what: str = "JSONL file", fix: str | None = None,
                       encoding: str = "utf-8") -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; a bad line names ``file:line``."""
    p = Path(path)
    rows = []
    for lineno, line in enumerate(read_text(p, what=what, encoding=encoding, fix=fix).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise HarnessError(f"{p}:{lineno}: not valid JSON ({err.msg})",
                               fix=fix or "Each line must be one JSON object.") from None
        if not isinstance(row, dict):
            raise HarnessError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}", fix=fix)
        rows.append((lineno, row))
    return rows


def read_jsonl(path: str | os.PathLike, *, what: str = "JSONL file", fix: str | None = None) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl_located(path, what=what, fix=fix)]


def read_yaml(path: str | os.PathLike, *, what: str = "YAML file") -> Any:
    """A YAML file's content; a syntax error names ``file:line`` (configs, tasks, judges).

    Stricter than ``yaml.safe_load`` where it silently loses what a user wrote: a key given
    twice in one mapping (the last would win) and a key YAML reads as a boolean, number or null
    (``off:``, ``no:``, ``1:``) are errors naming both lines / the line, with the fix."""
    import yaml

    p = Path(path)
    text = read_text(p, what=what)
    try:
        return yaml.load(text, Loader=_strict_loader(str(p)))  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise HarnessError(f"{p}{line}: not valid YAML: {problem}", fix="Fix the YAML syntax.") from None


def yaml_key_lines(text: str) -> dict[tuple, int]:
    """The line of every mapping key / list item in a YAML text, by its path: for the place in a
    validation error (callers parse it only when there is an error to place)."""
    import yaml

    out: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = path + (k.value,)
                out.setdefault(key, k.start_mark.line + 1)
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out.setdefault(path + (i,), v.start_mark.line + 1)
                walk(v, path + (i,))

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    except yaml.YAMLError:
        pass
    return out


def _strict_loader(where: str):
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
                self.flatten_mapping(node)  # merged (<<) keys come first; the node's own may override them
                seen: dict[Any, int] = {}
                for key_node, _ in node.value[len(node.value) - own:]:
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    if not isinstance(key, str):
                        raw = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                        kind = {bool: "a boolean", int: "a number", float: "a number",
                                type(None): "null"}.get(type(key), type(key).__name__)
                        raise HarnessError(f"{where}:{line}: the key {raw!r} is read by YAML as {kind}",
                                           fix=f"Quote it: '{raw}':")
                    if key in seen:
                        raise HarnessError(f"{where}:{line}: the key {key!r} is given twice "
                                           f"(first at line {seen[key]}); YAML would keep only the last",
                                           fix="Give each key once.")
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader
