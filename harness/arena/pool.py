"""What the arena shows: the run's stored answers grouped by prompt item, and random matchups.

``ArenaPool.from_run`` reads ``samples/<model>/<task>.jsonl`` through ``RunDir`` and checks the
input (a run with no samples, fewer than two models, an unknown ``--models`` name are one-line
``HarnessError``s). ``draw`` picks a random item that at least two models answered, two different
models among them, and a random left/right order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, did_you_mean
from harness.records import Sample
from harness.store import RunDir


@dataclass(frozen=True)
class Matchup:
    """One prompt and two anonymous answers; ``left``/``right`` stay on the server until the vote."""

    task: str
    item: str
    prompt: str
    left: str
    right: str
    left_answer: str
    right_answer: str

    def key(self) -> tuple[str, str, frozenset]:
        return (self.task, self.item, frozenset((self.left, self.right)))


def prompt_text(s: Sample) -> str:
    """What the voter reads as the question: instruction (+ input), else the prompt sent."""
    text = s.instruction.strip()
    if s.input.strip():
        text = f"{text}\n\n{s.input.strip()}" if text else s.input.strip()
    return text or s.prompt.strip()


class ArenaPool:
    """Answers per prompt item ``{(task, id): {model: Sample}}`` for the chosen models."""

    def __init__(self, items: dict[tuple[str, str], dict[str, Sample]], models: Sequence[str]):
        self.models = list(models)
        self.items = {k: v for k, v in items.items() if len(v) >= 2}
        self._keys = sorted(self.items)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, models: Sequence[str] | None = None) -> ArenaPool:
        path = Path(run_dir)
        if not path.is_dir():
            raise HarnessError(f"{path} is not a run directory", fix="pass a folder under reports/, e.g. "
                               "`harness arena reports/<run-id>`")
        run = RunDir(path)
        files = run.sample_files()
        if not files:
            raise HarnessError(f"{path}: the run has no stored answers (no samples/<model>/<task>.jsonl)",
                               fix="run `harness run` with generation tasks first; the arena shows their answers")
        present = list(dict.fromkeys(m for m, _, _ in files))
        chosen = _choose(present, models, path)
        items: dict[tuple[str, str], dict[str, Sample]] = {}
        for model, task, _ in files:
            if model not in chosen:
                continue
            for s in run.samples(model, task):
                items.setdefault((s.task or task, str(s.id)), {})[model] = s
        pool = cls(items, chosen)
        if not pool.items:
            raise HarnessError(f"{path}: no prompt item was answered by two of {', '.join(chosen)}",
                               fix="choose models that ran the same tasks (--models)")
        return pool

    def draw(self, rng: random.Random, avoid: set | frozenset = frozenset(), tries: int = 20) -> Matchup:
        """A random matchup, preferring one whose (item, pair) is not in ``avoid``."""
        m = self._draw_once(rng)
        for _ in range(tries):
            if m.key() not in avoid:
                break
            m = self._draw_once(rng)
        return m

    def _draw_once(self, rng: random.Random) -> Matchup:
        task, item = self._keys[rng.randrange(len(self._keys))]
        answers = self.items[(task, item)]
        left, right = rng.sample(sorted(answers), 2)
        return Matchup(task=task, item=item, prompt=prompt_text(answers[left]), left=left, right=right,
                       left_answer=answers[left].response, right_answer=answers[right].response)


def _choose(present: list[str], wanted: Sequence[str] | None, path: Path) -> list[str]:
    if wanted:
        for m in wanted:
            if m not in present:
                raise HarnessError(f"--models: {m!r} has no stored answers in {path}{did_you_mean(m, present)}",
                                   fix=f"choose from {', '.join(present)}")
        chosen = list(dict.fromkeys(wanted))
    else:
        chosen = present
    if len(chosen) < 2:
        raise HarnessError(f"the arena needs answers of two models; {path} has "
                           f"{'only ' + repr(chosen[0]) if chosen else 'none'}",
                           fix="pick two or more models with --models, or run more models")
    return chosen
