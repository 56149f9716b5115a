"""The blind arena as a Gradio app: a prompt, two anonymous answers, a vote, then the names.

Which models answered stays on the server (per-session ``gr.State``) until the vote is stored;
the page and the API get only the prompt and the two answer texts. Answers are shown as plain
text (read-only text boxes), never rendered as Markdown or HTML.

Endpoints (for ``gradio_client``): ``/next`` -> (prompt, left answer, right answer, reveal text);
``/vote_left``, ``/vote_right``, ``/vote_tie``, ``/vote_both_bad`` take the voter name and return
the reveal text naming both models. Offline: analytics off, no share link, no server-side
rendering, the theme's fonts and the front end come from the installed wheel.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

from harness.arena.pool import ArenaPool, Matchup
from harness.arena.votes import CHOICES, append_vote, make_vote
from harness.errors import HarnessError

_LABELS = {"left": "◀ Left is better", "right": "Right is better ▶", "tie": "Tie", "both_bad": "Both bad"}
_SAID = {"left": "left is better", "right": "right is better", "tie": "a tie", "both_bad": "both bad"}


def offline_environment() -> None:
    """Turn off what would reach the network: analytics / version checks (before gradio is imported)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


class ArenaSession:
    """The server-side logic behind the page, one instance per app (state per browser session)."""

    def __init__(self, pool: ArenaPool, votes_file: str | os.PathLike, *, voter: str = "", seed: int | None = None):
        self.pool = pool
        self.votes_file = Path(votes_file)
        self.voter = voter
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def next(self, state: dict | None) -> tuple[dict, str, str, str, str]:
        """A new matchup for this session: (state, prompt, left answer, right answer, reveal text)."""
        seen = set((state or {}).get("seen", ()))
        with self._lock:
            m = self.pool.draw(self._rng, avoid=seen)
        seen.add(m.key())
        new = {"matchup": m, "voted": None, "seen": seen}
        return new, m.prompt, m.left_answer, m.right_answer, "Identities are hidden until you vote."

    def vote(self, state: dict | None, choice: str, voter: str, session: str = "") -> tuple[dict, str]:
        """Store the vote on this session's current matchup and reveal both names."""
        if choice not in CHOICES:
            raise ValueError(f"unknown choice {choice!r}")
        m: Matchup | None = (state or {}).get("matchup")
        if m is None:
            return state or {}, "No pair is shown yet: press **Next pair**."
        if state.get("voted"):
            return state, reveal(m, state["voted"]) + "\n\n(Already counted once; press **Next pair**.)"
        who = (voter or "").strip() or self.voter or (f"anon-{session[:8]}" if session else "anonymous")
        append_vote(self.votes_file, make_vote(voter=who[:100], task=m.task, item=m.item, left=m.left,
                                               right=m.right, choice=choice))
        state = {**state, "voted": choice}
        return state, reveal(m, choice)


def reveal(m: Matchup, choice: str) -> str:
    winner = {"left": f" → **{m.left}**", "right": f" → **{m.right}**"}.get(choice, "")
    return (f"Left was **{m.left}**, right was **{m.right}**. Your vote: {_SAID[choice]}{winner} (saved).")


def build_app(session: ArenaSession, title: str = "harness arena"):
    """The gr.Blocks page for ``session`` (gradio imported here, not at module level)."""
    offline_environment()
    import gradio as gr

    def on_next(state):
        new, prompt, left, right, note = session.next(state)
        return (new, prompt, left, right, note, *[gr.update(interactive=True)] * len(CHOICES))

    def voter_of(choice):
        def on_vote(state, voter, request):
            new, note = session.vote(state, choice, voter, getattr(request, "session_hash", "") or "")
            return (new, note, *[gr.update(interactive=False)] * len(CHOICES))
        on_vote.__name__ = f"vote_{choice}"
        on_vote.__annotations__ = {"request": gr.Request}  # how gradio knows to pass the request
        return on_vote

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        state = gr.State(None)
        gr.Markdown(f"## {title}\nRead the question and the two answers, then vote. The models' names are "
                    "shown after your vote. Answers come from the run's stored samples.")
        voter = gr.Textbox(label="Your name (voter id)", value=session.voter, max_lines=1,
                           placeholder="stored with your votes; empty: an id for this browser session")
        prompt = gr.Textbox(label="Question", interactive=False, lines=3, max_lines=20, elem_id="arena-prompt")
        with gr.Row(equal_height=True):
            left = gr.Textbox(label="Answer left", interactive=False, lines=8, max_lines=30, elem_id="arena-left")
            right = gr.Textbox(label="Answer right", interactive=False, lines=8, max_lines=30, elem_id="arena-right")
        with gr.Row():
            buttons = [gr.Button(_LABELS[c], variant="primary" if c in ("left", "right") else "secondary",
                                 elem_id=f"arena-{c}") for c in CHOICES]
        note = gr.Markdown("", elem_id="arena-reveal")
        nxt = gr.Button("Next pair ▶", elem_id="arena-next")

        outputs_next = [state, prompt, left, right, note, *buttons]
        nxt.click(on_next, inputs=[state], outputs=outputs_next, api_name="next")
        demo.load(on_next, inputs=[state], outputs=outputs_next, api_name=False)
        for c, b in zip(CHOICES, buttons):
            b.click(voter_of(c), inputs=[state, voter], outputs=[state, note, *buttons], api_name=f"vote_{c}")
    return demo


def serve(session: ArenaSession, *, host: str = "127.0.0.1", port: int = 7860, quiet: bool = True) -> Any:
    """Start the app on ``host:port`` without blocking (no share link) and return the running
    gr.Blocks: ``.local_url`` says where it listens, ``.block_thread()`` waits, ``.close()`` stops it."""
    try:
        demo = build_app(session)
    except ImportError as err:
        raise HarnessError(f"the arena needs gradio, which is not installed ({err})",
                           fix='pip install "checkpoint-harness[arena]" (or pip install "gradio>=6")') from None
    demo.queue(default_concurrency_limit=8)
    try:
        demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=quiet,
                    prevent_thread_lock=True, show_error=True, ssr_mode=False, pwa=False, mcp_server=False,
                    footer_links=[], enable_monitoring=False)
    except OSError as err:
        if "port" in str(err).lower() or getattr(err, "errno", None) in (98, 99, 13):
            raise HarnessError(f"--port {port}: cannot listen on {host}:{port} ({_first(err)})",
                               fix="pass a free --port, or stop what uses it") from None
        raise
    return demo


def _first(err: BaseException) -> str:
    return str(err).split(". ")[0].strip()
