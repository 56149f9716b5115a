"""Prompt formats: how an (instruction, input, system) triple becomes the text a model sees.

Every named format is a small Jinja template over ``instruction``, ``input`` and ``system``,
so a format is fully identified by its template text (``template_hash``). ``chat`` uses the
tokenizer's own chat template. A user may give a Jinja string (anything containing ``{{``)
or a path to a ``.jinja`` file.

``extract_response`` turns raw generated text into the answer (strips leaked prompts,
repeated headers, stop strings, end tokens); ``render_training`` gives the trainer the
(prompt, completion) pair that matches what evaluation will send.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

# End-of-turn markers of common chat templates; a template that contains one stops on it.
END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>",
               "<|endoftext|>", "</s>", "<|END_OF_TURN_TOKEN|>", "[/INST]")

_ALPACA_PRE = ("Below is an instruction that describes a task. "
               "Write a response that appropriately completes the request.")
_ALPACA_PRE_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                     "further context. Write a response that appropriately completes the request.")
_ALPACA_KO_PRE = "아래는 작업을 설명하는 지시사항입니다. 요청을 적절히 완료하는 응답을 작성하세요."
_ALPACA_KO_PRE_INPUT = ("아래는 작업을 설명하는 지시사항과 추가 맥락을 제공하는 입력이 짝을 이루는 예제입니다. "
                        "요청을 적절히 완료하는 응답을 작성하세요.")

# ``user`` is instruction + "\n\n" + input (or the instruction alone) for chat-style formats.
_USER = "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}"


def _alpaca(pre: str, pre_input: str, ins: str, inp: str, resp: str) -> str:
    return ("{% if system %}{{ system }}{% elif input %}" + pre_input + "{% else %}" + pre + "{% endif %}"
            f"\n\n{ins}\n{{{{ instruction }}}}\n\n{{% if input %}}{inp}\n{{{{ input }}}}\n\n{{% endif %}}{resp}\n")


@dataclass(frozen=True)
class _Named:
    template: str
    stop: tuple[str, ...]
    response_headers: tuple[str, ...] = ()   # a repeated one at the start is stripped, a later one cuts
    prompt_headers: tuple[str, ...] = ()     # an answer that starts with one leaked the prompt
    end: str | None = None                   # appended to training completions (None: tokenizer eos)
    completion_prefix: str = ""


NAMED: dict[str, _Named] = {
    "alpaca": _Named(
        _alpaca(_ALPACA_PRE, _ALPACA_PRE_INPUT, "### Instruction:", "### Input:", "### Response:"),
        stop=("### Instruction", "### Input"),
        response_headers=("### Response:",), prompt_headers=("### Instruction:", "### Input:")),
    "alpaca-ko": _Named(
        _alpaca(_ALPACA_KO_PRE, _ALPACA_KO_PRE_INPUT, "### 지시사항:", "### 입력:", "### 응답:"),
        stop=("### 지시사항", "### 입력"),
        response_headers=("### 응답:",), prompt_headers=("### 지시사항:", "### 입력:")),
    "chatml": _Named(
        "{% if system %}<|im_start|>system\n{{ system }}<|im_end|>\n{% endif %}"
        "<|im_start|>user\n" + _USER + "<|im_end|>\n<|im_start|>assistant\n",
        stop=("<|im_end|>", "<|im_start|>"), response_headers=("<|im_start|>assistant\n",), end="<|im_end|>"),
    "zephyr": _Named(
        "{% if system %}<|system|>\n{{ system }}</s>\n{% endif %}<|user|>\n" + _USER + "</s>\n<|assistant|>\n",
        stop=("</s>", "<|user|>"), response_headers=("<|assistant|>\n",), end="</s>"),
    "llama3": _Named(
        "<|begin_of_text|>{% if system %}<|start_header_id|>system<|end_header_id|>\n\n{{ system }}<|eot_id|>"
        "{% endif %}<|start_header_id|>user<|end_header_id|>\n\n" + _USER
        + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        stop=("<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>"),
        response_headers=("<|start_header_id|>assistant<|end_header_id|>\n\n",), end="<|eot_id|>"),
    "gemma": _Named(
        "<bos><start_of_turn>user\n{% if system %}{{ system }}\n\n{% endif %}" + _USER
        + "<end_of_turn>\n<start_of_turn>model\n",
        stop=("<end_of_turn>", "<start_of_turn>"), response_headers=("<start_of_turn>model\n",),
        end="<end_of_turn>"),
    "phi3": _Named(
        "{% if system %}<|system|>\n{{ system }}<|end|>\n{% endif %}<|user|>\n" + _USER
        + "<|end|>\n<|assistant|>\n",
        stop=("<|end|>", "<|endoftext|>", "<|user|>"), response_headers=("<|assistant|>\n",), end="<|end|>"),
    "qa-ko": _Named(
        "{% if system %}{{ system }}\n\n{% endif %}질문: {{ instruction }}{% if input %}\n{{ input }}{% endif %}\n답변:",
        stop=("\n질문:",), response_headers=("답변:",), prompt_headers=("질문:",), completion_prefix=" "),
    "plain": _Named(
        "{% if system %}{{ system }}\n\n{% endif %}" + _USER,
        stop=()),
}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass
class PromptFormat:
    """A way to turn an instruction into the model's prompt text."""

    name: str
    template: str                                   # the template text (Jinja, or the chat template)
    stop_strings: list[str] = field(default_factory=list)
    response_headers: list[str] = field(default_factory=list)
    prompt_headers: list[str] = field(default_factory=list)
    end_token: str | None = None                    # closes a training completion
    completion_prefix: str = ""
    source: str | None = None                       # the file a user template came from
    tokenizer: Any = field(default=None, repr=False, compare=False)  # only for ``chat``
    _compiled: Any = field(default=None, repr=False, compare=False)

    @property
    def template_hash(self) -> str:
        return _hash(self.template)

    def render(self, instruction: str, input: str = "", system: str | None = None) -> str:
        """The full prompt text, ending where the answer begins."""
        if self.name == "chat":
            return self._render_chat(instruction, input or "", system)
        from harness.templating import compile_template, render_template

        where = self.source or f"prompt format {self.name!r}"
        if self._compiled is None:
            self._compiled = compile_template(self.template, where,
                                              fix="Fix the template (variables: instruction, input, system).")
        return render_template(self._compiled, where, instruction=instruction, input=input or "",
                               system=system or "")

    def render_messages(self, messages: list[dict[str, Any]], system: str | None = None) -> str:
        """The prompt for the next answer of a conversation (a ``messages`` task item).

        With ``chat`` every earlier turn goes through the tokenizer's chat template; a named
        format has one instruction slot, so earlier turns become a transcript in its input."""
        msgs = [m for m in messages if m.get("role") != "system"]
        own_system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
        system = own_system or system
        if self.name == "chat":
            full = ([{"role": "system", "content": system}] if system else []) + msgs
            try:
                return self._apply(full, True)
            except Exception:
                if not system:
                    raise
                first = dict(msgs[0], content=f"{system}\n\n{msgs[0]['content']}")  # no system role (Gemma)
                return self._apply([first] + msgs[1:], True)
        last = msgs[-1].get("content", "") if msgs else ""
        earlier = "\n".join(f"{m.get('role')}: {m.get('content', '')}" for m in msgs[:-1])
        return self.render(last, earlier, system)

    def _messages(self, instruction: str, input: str, system: str | None, merge_system: bool):
        user = instruction + (f"\n\n{input}" if input else "")
        if system and merge_system:
            return [{"role": "user", "content": f"{system}\n\n{user}"}]
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]

    def _apply(self, messages, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def _render_chat(self, instruction: str, input: str, system: str | None) -> str:
        try:
            return self._apply(self._messages(instruction, input, system, False), True)
        except Exception:
            if not system:
                raise
            # templates without a system role (Gemma) raise: fold the system text into the user turn
            return self._apply(self._messages(instruction, input, system, True), True)


def _infer_stops(template: str) -> tuple[list[str], list[str], list[str]]:
    """Stop strings and headers for a user template: its end markers and '### ' headings."""
    stops = [m for m in END_MARKERS if m in template]
    headings = [ln.strip() for ln in template.splitlines() if ln.strip().startswith("### ")]
    response = [h for h in headings[-1:]]          # the last heading introduces the answer
    prompt = [h for h in headings[:-1]]
    stops += [h.rstrip(":") for h in prompt]
    return stops, response, prompt


def default_format(has_chat_template: bool | None) -> str:
    """The format of a model that configures none: "chat" (its tokenizer's chat template), or
    "alpaca" when the tokenizer has none. None (not known without loading it) counts as "chat"."""
    return "alpaca" if has_chat_template is False else "chat"


def get_format(spec: str | None, tokenizer: Any = None, *, base_dir: str | Path | None = None) -> PromptFormat:
    """``spec``: None/'chat' (the tokenizer's chat template), a named format, a Jinja string or a
    ``.jinja`` path. ``tokenizer`` supplies the chat template and the end-of-sequence token."""
    eos = getattr(tokenizer, "eos_token", None) if tokenizer is not None else None
    spec = spec or "chat"
    if spec == "chat":
        tmpl = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
        if isinstance(tmpl, dict):
            tmpl = tmpl.get("default") or next(iter(tmpl.values()), None)
        if not tmpl:
            raise HarnessError("prompt_format 'chat': the tokenizer has no chat template",
                               fix="Set `prompt_format: alpaca` (or another named format / a Jinja template) "
                                   "on this model.")
        stops = [m for m in END_MARKERS if m in tmpl]
        if eos and eos not in stops:
            stops.append(eos)
        end = next((m for m in END_MARKERS if m in tmpl), eos)
        return PromptFormat("chat", tmpl, stops, end_token=end, tokenizer=tokenizer)
    if spec in NAMED:
        n = NAMED[spec]
        return PromptFormat(spec, n.template, list(n.stop), list(n.response_headers), list(n.prompt_headers),
                            end_token=n.end if n.end is not None else eos, completion_prefix=n.completion_prefix)
    if "{{" in spec or "{%" in spec:
        text, name = spec, "custom"
    else:
        p = Path(spec).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
        if p.suffix in (".jinja", ".j2", ".jinja2", ".txt") and p.is_file():
            text, name = p.read_text(encoding="utf-8"), f"file:{p.name}"
        else:
            from harness.config import PROMPT_FORMATS

            raise HarnessError(f"prompt_format {spec!r} is not a known format, a Jinja template or a .jinja file",
                               fix=f"Use one of {', '.join(PROMPT_FORMATS)}, a template string with "
                                   "{{ instruction }}, or a path to a .jinja file.")
    fmt_stops, resp, prompt = _infer_stops(text)
    if eos and eos not in fmt_stops and eos in text:
        fmt_stops.append(eos)
    fmt = PromptFormat(name, text, fmt_stops, resp, prompt, end_token=eos,
                       source=str(p) if name.startswith("file:") else None)
    fmt.render("x", "y", None)  # fail now on a broken template, not in the middle of a run
    return fmt


# The most bytes a UTF-8 character can be missing at a cut (a 4-byte character cut after its first).
_MAX_PARTIAL = 3


def drop_partial_char(text: str) -> str:
    """``text`` without the U+FFFD that a generation cut by the token limit ends in when its last
    tokens hold only the first bytes of a character (byte-level BPE splits a Korean syllable's 3
    bytes across tokens; decoding replaces the incomplete sequence). Only for length-cut text:
    a U+FFFD anywhere else, or in an answer that ended by itself, is the model's and stays.
    At most 3 are dropped (one per missing byte for byte-fallback decoders, one for byte-level)."""
    n = 0
    while n < _MAX_PARTIAL and len(text) > n and text[-1 - n] == "\ufffd":
        n += 1
    return text[: len(text) - n] if n else text


def cut_at_stops(text: str, markers) -> str:
    """The text before the first of ``markers`` (empty ones ignored)."""
    idx = [text.find(m) for m in markers if m and m in text]
    return text[: min(idx)] if idx else text


def extract_response(text: str, fmt: PromptFormat, prompt: str | None = None, stop=()) -> str:
    """The answer inside raw generated text: drop a leaked prompt, repeated headers, anything
    after a stop string or end token, and the surrounding whitespace."""
    if prompt and text.startswith(prompt):
        text = text[len(prompt):]
    elif prompt and prompt.strip() and text.lstrip().startswith(prompt.strip()):
        text = text.lstrip()[len(prompt.strip()):]
    heads = [h for h in fmt.response_headers if h.strip()]
    stripped = text.lstrip()
    # the model re-wrote the prompt ("### 지시사항: ... ### 응답: answer"): keep what follows its header
    if any(stripped.startswith(h.strip()) for h in fmt.prompt_headers if h.strip()):
        positions = [stripped.find(h.strip()) for h in heads if h.strip() in stripped]
        if positions:
            first = min(positions)
            head = next(h.strip() for h in heads if stripped.find(h.strip()) == first)
            stripped = stripped[first + len(head):]
    # repeated response headers at the start
    changed = True
    while changed:
        changed = False
        stripped = stripped.lstrip()
        for h in heads:
            if stripped.startswith(h.strip()):
                stripped, changed = stripped[len(h.strip()):], True
    text = cut_at_stops(stripped, list(fmt.stop_strings) + list(stop) + [h.strip() for h in heads]
                + [h.strip() for h in fmt.prompt_headers] + list(END_MARKERS))
    return text.strip()


def render_training(instruction: str, input: str, output: str, fmt: PromptFormat,
                    system: str | None = None) -> tuple[str, str]:
    """(prompt, completion) for supervised training: the prompt is exactly what evaluation
    sends; the completion is the answer followed by the format's end-of-turn / eos marker."""
    prompt = fmt.render(instruction, input, system)
    if fmt.name == "chat":
        full = None
        for merge in (False, True):
            msgs = fmt._messages(instruction, input or "", system, merge)
            try:
                full = fmt._apply(msgs + [{"role": "assistant", "content": output}], False)
                if merge:
                    prompt = fmt._apply(msgs, True)
                break
            except Exception:
                if not system or merge:
                    raise
        if full is not None and full.startswith(prompt):
            return prompt, full[len(prompt):]
    end = fmt.end_token or ""
    return prompt, fmt.completion_prefix + output + end
