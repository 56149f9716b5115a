"""The one way harness renders templates that come from user files.

Judge prompts (``judges/<name>/prompt.*.j2``) and model ``prompt_format`` templates are data
that may arrive in a pull request, so they are never trusted: every such template is compiled
by Jinja's ``ImmutableSandboxedEnvironment``, which refuses attribute walks such as
``{{ ''.__class__.__mro__ }}`` and any call that mutates state. A template the sandbox blocks,
or one that does not parse, is a ``HarnessError`` naming the file (exit code 2), never a
traceback and never code execution.

(Report templates ship inside the package and render with autoescape; tokenizer chat
templates are rendered by transformers, which sandboxes them the same way.)
"""

from __future__ import annotations

import functools
from typing import Any

from harness.errors import HarnessError


@functools.lru_cache(maxsize=2)
def sandboxed_env(*, strict: bool = False):
    """The sandboxed Jinja environment (StrictUndefined when ``strict``); one per kind, reused
    (an immutable sandbox holds no per-template state)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    kw: dict[str, Any] = {"keep_trailing_newline": True, "autoescape": False}
    if strict:
        kw["undefined"] = jinja2.StrictUndefined
    return ImmutableSandboxedEnvironment(**kw)


def compile_template(source: str, where: str, *, strict: bool = False, fix: str | None = None):
    """Compile ``source`` in the sandbox; a syntax error names ``where`` (file:line)."""
    import jinja2

    try:
        return sandboxed_env(strict=strict).from_string(source)
    except jinja2.TemplateSyntaxError as err:
        line = f":{err.lineno}" if err.lineno else ""
        raise HarnessError(f"{where}{line}: not a valid Jinja template: {err.message}",
                           fix=fix or "Fix the Jinja syntax.") from None
    except jinja2.TemplateError as err:
        raise HarnessError(f"{where}: not a valid Jinja template: {err}", fix=fix or "Fix the template.") from None


def render_template(template, where: str, **variables: Any) -> str:
    """Render a compiled template; blocked or failing templates become one-line errors."""
    import jinja2
    from jinja2.sandbox import SecurityError

    try:
        return template.render(**variables)
    except SecurityError as err:
        raise HarnessError(f"{where}: the template tried something the sandbox blocks ({err})",
                           fix="Templates may only print variables and use filters/loops; remove the "
                               "attribute or method access.") from None
    except jinja2.UndefinedError as err:
        raise HarnessError(f"{where}: template uses an undefined variable ({err.message})",
                           fix="Use only the variables the template is given.") from None
    except jinja2.TemplateError as err:
        raise HarnessError(f"{where}: template failed to render: {err}", fix="Fix the template.") from None
