"""User-facing errors: one line that says what was wrong, where, and what to do.

Anything a user can fix (config, data files, paths, unreachable servers) raises
``HarnessError``; the CLI prints its message without a traceback and exits with code 2.
"""

from __future__ import annotations


class HarnessError(Exception):
    """An input or environment mistake the user can act on (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.where = where
        self.fix = fix
        text = (f"{where}: {message}" if where else message).rstrip()
        if fix:
            fix = fix.strip()
            # two sentences: the problem, then the fix
            text = f"{text}{'' if text.endswith(('.', '!', '?', ':')) else '.'} {fix[:1].upper()}{fix[1:]}"
        super().__init__(text)


class GateFailed(Exception):
    """Raised by ``harness run --gate`` when a gate fails (exit code 1)."""

    exit_code = 1


def did_you_mean(word: str, options, n: int = 1) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=n, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def as_user_error(err: BaseException) -> HarnessError | None:
    """A known library error, said as one actionable line; None for an unexpected one.

    Library exception types are recognised by module and name, so nothing heavy is imported."""
    if isinstance(err, HarnessError):
        return err
    kind = type(err).__name__
    module = type(err).__module__ or ""
    text = str(err)
    if isinstance(err, UnicodeDecodeError):
        return HarnessError(f"a file is not valid {err.encoding} text (byte offset {err.start}: "
                            f"{err.object[err.start:err.start + 4]!r})",
                            fix="Save it as UTF-8, or set `encoding:` on the task.")
    if kind == "SecurityError" and module.startswith("jinja2"):
        return HarnessError(f"a template tried something the sandbox blocks ({_first_line(err)})",
                            fix="Templates may only print variables and use filters and loops.")
    if "trust_remote_code" in text:
        return HarnessError("the model folder ships its own Python code and asks for trust_remote_code",
                            fix="If you trust that code, set `trust_remote_code: true` on the model AND pass "
                                "--trust-remote-code (or HARNESS_TRUST_REMOTE_CODE=1).")
    if module.startswith("huggingface_hub") or kind in ("OfflineModeIsEnabled", "LocalEntryNotFoundError",
                                                        "RepositoryNotFoundError", "GatedRepoError"):
        return HarnessError(f"the Hugging Face hub could not give what was asked ({kind}: {_first_line(err)})",
                            fix="Download it first or give a local path (HF_HUB_OFFLINE is set on CI).")
    if kind == "OutOfMemoryError" or (isinstance(err, RuntimeError) and "out of memory" in text.lower()):
        return HarnessError(f"out of memory ({_first_line(err, 120)})",
                            fix="Lower generation.batch_size or max_new_tokens, or use a GPU / load_in_4bit; "
                                "finished units are kept: continue with `harness run --resume RUN_DIR`.")
    if isinstance(err, (ConnectionError, TimeoutError)) or kind in ("ConnectError", "ReadTimeout",
                                                                   "APIConnectionError"):
        return HarnessError(f"a server did not answer ({kind}: {_first_line(err)})",
                            fix="Check that it is running and reachable, then rerun (add --resume RUN_DIR to "
                                "keep finished units).")
    if kind == "JSONDecodeError":
        return HarnessError(f"a server or file answered with text that is not JSON ({_first_line(err)})",
                            fix="Check the host/URL points at the right server (an Ollama or "
                                "OpenAI-compatible API), and that data files are JSON.")
    return None
