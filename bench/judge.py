"""Judge throughput: sequential vs concurrent requests, then a cached re-run.

Runs the real ``ollama`` (or ``openai``) client against tests/fake_judge_server.py with a
fixed per-request latency, judges N items with the reference-0-100 judge, and prints
wall times, the concurrent/sequential ratio and the number of requests of the cached run.

    .venv/bin/python bench/judge.py                 # 100 items, 200 ms, concurrency 8, ollama
    .venv/bin/python bench/judge.py --backend openai --items 50 --latency 0.1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fake_judge_server import FakeJudgeServer

from harness.judging import JudgeItem, judge_pointwise, load_judge, make_backend, summarize_pointwise


class _ServerProcess:
    """The fake server in its own process (like a real judge server: no shared GIL)."""

    def __init__(self, latency: float):
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fake_judge_server.py"), "--latency", str(latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.proc.kill()
            raise SystemExit(f"fake server did not start (got {self.url!r})")
        self.openai_url = f"{self.url}/v1"

    def chat_count(self) -> int:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=5) as r:
            return int(json.load(r)["chat"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@contextlib.contextmanager
def fake_server(latency: float, in_process: bool):
    if in_process:
        with FakeJudgeServer(models=["llama3:latest", "judge-model"], latency=latency) as srv:
            yield srv
    else:
        srv = _ServerProcess(latency)
        try:
            yield srv
        finally:
            srv.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per judge request")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--backend", choices=["ollama", "openai"], default="ollama")
    ap.add_argument(
        "--in-process", action="store_true", help="run the fake server in this process (shares the GIL)"
    )
    args = ap.parse_args()

    defn = load_judge("reference-0-100")
    items = [
        JudgeItem(
            id=str(i),
            task="bench",
            model="sft",
            question=f"question {i}",
            reference=f"reference {i}",
            answer=f"answer SCORE={i % 101}",
        )
        for i in range(args.items)
    ]
    expected = [float(i % 101) for i in range(args.items)]

    with fake_server(args.latency, args.in_process) as srv, tempfile.TemporaryDirectory() as cache:
        if args.backend == "ollama":
            backend = make_backend("ollama:llama3", {"host": srv.url, "timeout": 30})
        else:
            backend = make_backend(
                "openai:judge-model", {"base_url": srv.openai_url, "api_key": "bench", "timeout": 30}
            )
        backend.check()

        def run(label, concurrency, **kw):
            before = srv.chat_count()
            t0 = time.perf_counter()
            vs = judge_pointwise(defn, backend, items, cache_dir=cache, concurrency=concurrency, **kw)
            dt = time.perf_counter() - t0
            n_req = srv.chat_count() - before
            assert [v.score for v in vs] == expected, f"{label}: wrong scores"
            print(f"{label:<28} {dt:8.2f} s  {n_req:4d} requests  {args.items / dt:8.1f} items/s")
            return dt, n_req, vs

        where = "in-process" if args.in_process else "separate process"
        print(
            f"{args.items} items, {args.latency * 1000:.0f} ms per request, backend {backend.spec} (fake server, {where})"
        )
        t_seq, _, _ = run("sequential (concurrency 1)", 1, use_cache=False)
        t_par, _, _ = run(f"concurrency {args.concurrency}", args.concurrency)
        t_hit, n_hit, vs = run(f"cached re-run (conc. {args.concurrency})", args.concurrency)
        mv = summarize_pointwise(vs, ["sft"])["models"]["sft"]["reference-0-100"]
        print(
            f"concurrent / sequential time: {t_par / t_seq:.3f}  (ideal 1/{args.concurrency} = {1 / args.concurrency:.3f}; speed-up {t_seq / t_par:.2f}x)"
        )
        print(f"cached / sequential time:     {t_hit / t_seq:.4f}  requests in cached run: {n_hit}")
        print(
            f"mean score {mv['value']:.2f}  95% CI [{mv['ci'][0]:.2f}, {mv['ci'][1]:.2f}]  n={mv['n']} missing={mv['missing']}"
        )
        return 0 if n_hit == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
