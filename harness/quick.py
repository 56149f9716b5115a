"""Quick runs without a harness.yaml: ``--model NAME=SPEC`` flags -> ``models:`` entries.

    harness run --model base=zoo:smollm2-135m-instruct --model sft=adapter:out/sft --tasks demo

A SPEC is one of (``PREFIXES``):

- ``zoo:NAME``                a model a package ships (``harness zoo list``)
- ``PATH`` or ``HUB_ID``      a transformers folder, a ``.gguf`` file or a hub id (``hf:`` may prefix it)
- ``adapter:PATH[@BASE]``     a PEFT adapter; BASE is an earlier ``--model`` name (stacking) or a
                              path / hub id / ``zoo:NAME``; default: the adapter's own
                              ``base_model_name_or_path``
- ``gguf:FILE.gguf``          a GGUF file (dequantized by transformers)
- ``vllm:PATH``               a checkpoint served by an offline vLLM engine (``backend: vllm``)
- ``openai:MODEL[@URL]``      a model on an OpenAI-compatible server (default OPENAI_BASE_URL)
- ``ollama:MODEL[@HOST]``     a model on an Ollama server (default OLLAMA_HOST)
- ``responses:FILE``          answers another system generated (JSON / JSONL)

Each maps onto the ``ModelSpec`` fields a config would set; the config validation then checks
the result as it checks a file. A malformed flag is one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import HarnessError, did_you_mean

PREFIXES = ("zoo", "hf", "adapter", "gguf", "vllm", "openai", "ollama", "responses")
EXAMPLE = "--model base=zoo:smollm2-135m-instruct --model sft=adapter:PATH@base"
_FORMS = ("zoo:NAME, PATH or HUB_ID, adapter:PATH[@BASE], gguf:FILE.gguf, vllm:PATH, openai:MODEL[@URL], "
          "ollama:MODEL[@HOST], responses:FILE")


def _bad(flag: str, what: str, fix: str | None = None) -> HarnessError:
    return HarnessError(f"--model {flag!r}: {what}", fix=fix or f"SPEC is one of {_FORMS}; e.g. {EXAMPLE}.")


def parse_model_flag(flag: str) -> tuple[str, dict[str, Any]]:
    """``NAME=SPEC`` -> (name, the ``models.NAME`` mapping a config would hold)."""
    name, sep, spec = flag.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep:
        looks_like_spec = any(c in flag for c in ":/.")
        raise _bad(flag, "expected NAME=SPEC", (f"Name the model, e.g. --model mine={flag}" if looks_like_spec
                                                 else f"Say what it is, e.g. --model {flag}=zoo:smollm2-135m-instruct")
                   if flag else None)
    if not name or any(c in name for c in "/.: "):
        raise _bad(flag, f"model name {name!r} may not be empty or contain '/', '.', ':' or spaces",
                   "Use a short name such as base, sft or dpo.")
    if not spec:
        raise _bad(flag, "nothing after '='")
    prefix, colon, rest = spec.partition(":")
    if not colon or prefix not in PREFIXES:
        if colon and prefix.isalpha() and len(prefix) > 1 and not rest.startswith("//") \
                and not Path(spec).expanduser().exists():
            raise _bad(flag, f"unknown kind {prefix + ':'!r}{did_you_mean(prefix + ':', [p + ':' for p in PREFIXES])}")
        return name, {"path": spec}  # a folder, a .gguf file or a hub id
    if not rest:
        raise _bad(flag, f"nothing after {prefix + ':'!r}")
    if prefix == "zoo":
        return name, {"path": spec}
    if prefix == "hf":
        return name, {"path": rest}
    if prefix == "gguf":
        if not rest.endswith(".gguf"):
            raise _bad(flag, f"{rest!r} is not a .gguf file", "Give the path of the .gguf file itself.")
        return name, {"path": rest}
    if prefix == "vllm":
        return name, {"path": rest, "backend": "vllm"}
    if prefix == "responses":
        return name, {"responses": rest}
    target, at, where = rest.rpartition("@") if "@" in rest else (rest, "", "")
    if at and (not target or not where):
        raise _bad(flag, f"empty {'part before' if not target else 'part after'} '@'")
    if prefix == "adapter":
        return name, {"adapter": target, **({"base": where} if where else {})}
    if prefix == "openai":
        return name, {"backend": "openai", "model": target, **({"base_url": where} if where else {})}
    return name, {"backend": "ollama", "model": target, **({"host": where} if where else {})}


def parse_model_flags(flags: list[str]) -> dict[str, dict[str, Any]]:
    """Every ``--model`` flag, in order; a name given twice is an error."""
    out: dict[str, dict[str, Any]] = {}
    for flag in flags:
        name, spec = parse_model_flag(flag)
        if name in out:
            raise _bad(flag, f"model name {name!r} is given twice", "Give each --model its own name.")
        out[name] = spec
    return out


def quick_config_data(models: dict[str, dict[str, Any]], tasks: list[str] | None,
                      benchmarks: list[str] | None) -> dict[str, Any]:
    """A config for a run with no harness.yaml: the ``--model`` models and only what the flags
    name (no judge, no benchmarks unless ``--benchmarks``); nothing to evaluate is an error."""
    from harness.tasks import known_tasks

    if not tasks and not [b for b in benchmarks or [] if b != "none"]:
        raise HarnessError("--model without a harness.yaml: nothing to evaluate",
                           fix=f"Pass --tasks (built in: {', '.join(known_tasks([]))}; or a task YAML path) "
                               "and/or --benchmarks (e.g. mmlu-mini).")
    return {"models": models, "tasks": list(tasks or []), "judge": "none"}
