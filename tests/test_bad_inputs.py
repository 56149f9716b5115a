"""Every bad input is one line, exit code 2, before anything starts.

One table of malformed inputs (configs, models, tasks, data, answers files, judges, templates,
gates, run directories). Each case starts from a small valid project (a responses model, so no
weights load), breaks one thing, runs the real CLI and asserts: exit code 2, exactly one line
starting with ``error:``, no traceback, the place and the fix named, and no run directory left
behind. A property test then corrupts a valid config and data file at random and checks that
the CLI never shows a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

ROWS = [{"instruction": "Give the antonym of hot.", "input": "", "output": "cold"},
        {"instruction": "What is the capital of France?", "input": "", "output": "Paris"}]


@dataclass
class Project:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "harness.yaml"

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def config_text(self, models: str = "  mine: {responses: answers.jsonl}\n", extra: str = "",
                    tasks: str = "[t.yaml]") -> None:
        self.write("harness.yaml", f"models:\n{models}tasks: {tasks}\noutput_dir: out\n"
                                   f"bootstrap_resamples: 100\n{extra}")

    def fake_model(self, rel: str = "m/base", config: dict | None = None) -> Path:
        self.write(f"{rel}/config.json", json.dumps(config or {"model_type": "llama", "hidden_size": 64,
                                                               "vocab_size": 1000}))
        return self.root / rel

    def lora_header(self, rel: str, shapes: dict[str, list[int]]) -> None:
        """An adapter_model.safetensors whose header declares these LoRA shapes (data left out:
        the fit check reads only the header)."""
        import struct

        header, offset = {}, 0
        for name, shape in shapes.items():
            size = 4 * shape[0] * shape[1]
            header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        blob = json.dumps(header).encode()
        self.write(f"{rel}/adapter_model.safetensors", struct.pack("<Q", len(blob)) + blob)

    def fake_adapter(self, rel: str, base: str | None, **cfg) -> Path:
        self.write(f"{rel}/adapter_config.json", json.dumps({"peft_type": "LORA", "base_model_name_or_path": base,
                                                             "r": 8, **cfg}))
        return self.root / rel


def _valid(root: Path) -> Project:
    p = Project(root)
    p.write("data.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS))
    p.write("t.yaml", "name: t\ndata: data.jsonl\nmetrics: [exact_match, length]\n")
    p.write("answers.jsonl", "".join(json.dumps({"instruction": r["instruction"], "input": "",
                                                 "model_response": r["output"]}) + "\n" for r in ROWS))
    p.config_text()
    return p


CASES: dict[str, Callable[[Project], tuple[list[str], list[str]]]] = {}


def case(fn):
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


def _run(p: Project, *more: str) -> list[str]:
    return ["run", "-c", str(p.config), "-q", *more]


# ---------------------------------------------------------------- the config file

@case
def case_config_missing(p):
    return ["run", "-c", str(p.root / "nope.yaml")], ["config file not found", "nope.yaml"]


@case
def case_config_broken_yaml(p):
    p.write("harness.yaml", "models:\n  mine: {responses: answers.jsonl\ntasks: [t.yaml]\n")
    return _run(p), ["harness.yaml:", "not valid YAML", "Fix the YAML syntax"]


@case
def case_config_not_a_mapping(p):
    p.write("harness.yaml", "- models\n- tasks\n")
    return _run(p), ["expected a mapping with 'models:'"]


@case
def case_config_typo_in_top_level_field(p):
    p.write("harness.yaml", "modles:\n  mine: {responses: answers.jsonl}\ntasks: [t.yaml]\n")
    return _run(p), ["harness.yaml:1", "'modles'", "did you mean 'models'"]


@case
def case_config_no_models(p):
    p.write("harness.yaml", "models: {}\ntasks: [t.yaml]\n")
    return _run(p), ["name at least one model"]


@case
def case_model_with_path_and_adapter(p):
    p.config_text("  mine: {path: m/base, adapter: a/sft}\n")
    return _run(p), ["models.mine", "exactly one of 'path', 'adapter' or 'responses'"]


@case
def case_model_with_no_source(p):
    p.config_text("  mine: {dtype: float32}\n")
    return _run(p), ["models.mine", "exactly one of"]


@case
def case_base_on_a_full_model(p):
    p.config_text("  mine: {path: m/base, base: other}\n")
    return _run(p), ["'base' only applies to an 'adapter'"]


@case
def case_model_name_with_a_slash(p):
    p.config_text("  my/model: {responses: answers.jsonl}\n")
    return _run(p), ["model name 'my/model'"]


@case
def case_model_name_yaml_reads_as_boolean(p):
    p.config_text("  off: {responses: answers.jsonl}\n")
    return _run(p), ["harness.yaml:2", "'off'", "boolean", "Quote it"]


@case
def case_model_name_yaml_reads_as_number(p):
    p.config_text("  1: {responses: answers.jsonl}\n")
    return _run(p), ["harness.yaml:2", "'1'", "number", "Quote it"]


@case
def case_duplicate_model_keys(p):
    p.config_text("  mine: {responses: answers.jsonl}\n  mine: {responses: answers.jsonl}\n")
    return _run(p), ["harness.yaml:3", "'mine' is given twice (first at line 2)"]


@case
def case_base_chain_loops(p):
    p.fake_adapter("a/x", None)
    p.fake_adapter("a/y", None)
    p.config_text("  x: {adapter: a/x, base: y}\n  y: {adapter: a/y, base: x}\n")
    return _run(p), ["base chain loops"]


@case
def case_base_is_itself(p):
    p.fake_adapter("a/x", None)
    p.config_text("  x: {adapter: a/x, base: x}\n")
    return _run(p), ["names the model itself"]


@case
def case_max_new_tokens_zero(p):
    p.config_text(extra="generation: {max_new_tokens: 0}\n")
    return _run(p), ["generation.max_new_tokens", "greater than or equal to 1"]


@case
def case_negative_temperature(p):
    p.config_text(extra="generation: {temperature: -1}\n")
    return _run(p), ["generation.temperature"]


@case
def case_unknown_generation_field(p):
    p.config_text(extra="generation: {max_new_token: 5}\n")
    return _run(p), ["generation.max_new_token", "did you mean 'max_new_tokens'"]


@case
def case_judge_concurrency_zero(p):
    p.config_text(extra="judge: {backend: none, concurrency: 0}\n")
    return _run(p), ["judge.concurrency"]


@case
def case_both_quantizations(p):
    p.fake_model()
    p.config_text("  q: {path: m/base, load_in_4bit: true, load_in_8bit: true}\n")
    return _run(p), ["choose one of load_in_4bit / load_in_8bit"]


@case
def case_unknown_dtype(p):
    p.fake_model()
    p.config_text("  q: {path: m/base, dtype: float8}\n")
    return _run(p), ["models.q.dtype", "float8"]


@case
def case_seed_not_a_number(p):
    p.config_text(extra="seed: abc\n")
    return _run(p), ["field 'seed'"]


@case
def case_models_flag_names_an_unknown_model(p):
    return _run(p, "--models", "mien"), ["unknown model 'mien'", "did you mean 'mine'"]


@case
def case_trust_remote_code_from_the_config_alone(p):
    p.fake_model()
    p.config_text("  m: {path: m/base, trust_remote_code: true}\n")
    return _run(p), ["models.m.trust_remote_code", "--trust-remote-code"]


# ---------------------------------------------------------------- checkpoints (resolved from small files)

@case
def case_model_path_not_found_offline(p):
    p.config_text("  m: {path: no/such-model}\n")
    return _run(p), ["models.m.path", "'no/such-model'", "hub is offline"]


@case
def case_model_path_is_a_text_file(p):
    p.write("weights.txt", "x")
    p.config_text("  m: {path: weights.txt}\n")
    return _run(p), ["is a file but not a .gguf"]


@case
def case_model_folder_without_config(p):
    p.write("m/empty/readme.md", "x")
    p.config_text("  m: {path: m/empty}\n")
    return _run(p), ["has no config.json, adapter_config.json or .gguf"]


@case
def case_adapter_folder_missing(p):
    p.config_text("  m: {adapter: a/none, base: m/base}\n")
    return _run(p), ["adapter folder", "does not exist"]


@case
def case_adapter_without_adapter_config(p):
    p.write("a/x/weights.bin", "x")
    p.fake_model()
    p.config_text("  m: {adapter: a/x, base: m/base}\n")
    return _run(p), ["has no adapter_config.json"]


@case
def case_adapter_config_not_json(p):
    p.write("a/x/adapter_config.json", "{not json")
    p.fake_model()
    p.config_text("  m: {adapter: a/x, base: m/base}\n")
    return _run(p), ["adapter_config.json", "not valid JSON"]


@case
def case_adapter_with_no_usable_base(p):
    p.fake_adapter("a/x", None)
    p.config_text("  m: {adapter: a/x}\n")
    return _run(p), ["has no usable base", "add `base:"]


@case
def case_adapter_base_is_an_offline_hub_id_the_zoo_ships(p):
    p.fake_adapter("a/x", "HuggingFaceTB/SmolLM2-135M-Instruct")
    p.config_text("  m: {adapter: a/x}\n")
    return _run(p), ["no usable base", "'HuggingFaceTB/SmolLM2-135M-Instruct'", "`base: zoo:smollm2-135m-instruct`"]


@case
def case_model_path_is_an_offline_hub_id_the_zoo_ships(p):
    p.config_text("  m: {path: HuggingFaceTB/SmolLM2-135M-Instruct}\n")
    return _run(p), ["hub is offline", "`zoo:smollm2-135m-instruct`"]


@case
def case_adapter_given_as_path(p):
    p.fake_adapter("a/x", None)
    p.config_text("  m: {path: a/x}\n")
    return _run(p), ["no usable base"]


@case
def case_unknown_zoo_model(p):
    p.config_text("  m: {path: 'zoo:no-such-model'}\n")
    return _run(p), ["no-such-model"]


def _lora(layer: int, width: int, r: int = 8) -> dict[str, list[int]]:
    pre = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
    return {f"{pre}.lora_A.weight": [r, width], f"{pre}.lora_B.weight": [width, r]}


@case
def case_adapter_trained_on_a_wider_model(p):
    p.fake_model()  # hidden 64
    p.fake_adapter("a/x", None)
    p.lora_header("a/x", _lora(0, 576))
    p.config_text("  m: {adapter: a/x, base: m/base}\n")
    return _run(p), ["models.m", "does not fit the base", "576", "hidden size is 64", "`base:`"]


@case
def case_adapter_trained_on_a_deeper_model(p):
    p.fake_model(config={"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 1000})
    p.fake_adapter("a/x", None)
    p.lora_header("a/x", {**_lora(0, 64), **_lora(5, 64)})
    p.config_text("  m: {adapter: a/x, base: m/base}\n")
    return _run(p), ["does not fit the base", "layer 5", "2 layers"]


# ---------------------------------------------------------------- tasks and their data

@case
def case_unknown_task(p):
    p.config_text(tasks="[no-such-task]")
    return _run(p), ["unknown task 'no-such-task'"]


@case
def case_suite_member_misspelled(p):
    p.write("s.yaml", "suite: [t.yaml, demo-kr]\n")
    p.config_text(tasks="[s.yaml]")
    return _run(p), ["unknown task 'demo-kr'", "did you mean 'demo-ko'"]


@case
def case_misspelled_task_on_the_command_line(p):
    return _run(p, "--tasks", "demo-em"), ["unknown task 'demo-em'", "did you mean 'demo-en'", "Known tasks:"]


@case
def case_adapter_base_misspells_a_model_name(p):
    p.fake_model()
    p.fake_adapter("a/sft", None)
    p.config_text("  base: {path: m/base}\n  sft: {adapter: a/sft, base: bsae}\n")
    return _run(p), ["models.sft.base: 'bsae'", "did you mean 'base'"]


@case
def case_quick_model_flag_with_an_unknown_kind(p):
    return _run(p, "--model", "x=adaptor:a/sft"), ["--model 'x=adaptor:a/sft'", "did you mean 'adapter:'"]


@case
def case_task_yaml_broken(p):
    p.write("t.yaml", "name: t\ndata: [data.jsonl\n")
    return _run(p), ["t.yaml:", "not valid YAML"]


@case
def case_task_unknown_field(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nmetrics: [exact_match]\nmetrix: [x]\n")
    return _run(p), ["t.yaml", "metrix"]


@case
def case_task_data_missing(p):
    p.write("t.yaml", "name: t\ndata: nope.jsonl\nmetrics: [exact_match]\n")
    return _run(p), ["data file not found", "nope.jsonl"]


@case
def case_data_line_not_json(p):
    p.write("data.jsonl", json.dumps(ROWS[0]) + "\n{broken\n")
    return _run(p), ["data.jsonl:2", "not valid JSON"]


@case
def case_data_line_not_an_object(p):
    p.write("data.jsonl", json.dumps(ROWS[0]) + "\n[1, 2]\n")
    return _run(p), ["data.jsonl:2", "expected a JSON object"]


@case
def case_data_not_utf8(p):
    p.write("data.jsonl", json.dumps(ROWS[0]).encode() + b"\n" + '{"instruction": "안녕"}'.encode("cp949") + b"\n")
    return _run(p), ["data.jsonl:2", "not valid utf-8", "byte offset", "encoding:"]


@case
def case_csv_data_not_utf8(p):
    p.write("data.csv", "instruction,output\nhello,world\n".encode() + "안녕,세상\n".encode("cp949"))
    p.write("t.yaml", "name: t\ndata: data.csv\nmetrics: [exact_match]\n")
    return _run(p), ["data.csv:3", "not valid utf-8", "encoding:"]


@case
def case_data_empty(p):
    p.write("data.jsonl", "\n")
    return _run(p), ["data file is empty"]


@case
def case_data_unsupported_format(p):
    p.write("data.txt", "hello")
    p.write("t.yaml", "name: t\ndata: data.txt\nmetrics: [exact_match]\n")
    return _run(p), ["unsupported data format '.txt'"]


@case
def case_data_row_without_the_instruction_field(p):
    p.write("data.jsonl", json.dumps({"question": "x", "output": "y"}) + "\n")
    return _run(p), ["data.jsonl:1", "'instruction'", "fields:"]


@case
def case_json_metric_on_text_references(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nmetrics: [json]\n")
    return _run(p), ["reference that is not JSON", "json"]


@case
def case_unknown_metric(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nmetrics: [rogue]\n")
    return _run(p), ["t.yaml", "unknown metric 'rogue'", "did you mean 'rouge'"]


@case
def case_options_for_a_metric_the_task_does_not_compute(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nmetrics: [rouge]\nmetric_options: {rogue: {tokenizer: kiwi}}\n")
    return _run(p), ["t.yaml", "options for 'rogue'", "did you mean 'rouge'"]


@case
def case_unknown_metric_option(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nmetrics: [rouge]\nmetric_options: {rouge: {tokeniser: kiwi}}\n")
    return _run(p), ["t.yaml", "tokeniser", "did you mean 'tokenizer'"]


@case
def case_filter_leaves_no_rows(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nfilter: {lang: xx}\nmetrics: [exact_match]\n")
    return _run(p), ["no rows left after filter"]


@case
def case_task_name_with_a_path_separator(p):
    p.write("t.yaml", "name: ../evil\ndata: data.jsonl\nmetrics: [exact_match]\n")
    return _run(p), ["t.yaml:1", "task name '../evil'", "no '/'"]


@case
def case_task_unknown_encoding(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nencoding: klingon\nmetrics: [exact_match]\n")
    return _run(p), ["t.yaml:3", "unknown text encoding 'klingon'"]


@case
def case_task_unknown_prompt_format(p):
    p.write("t.yaml", "name: t\ndata: data.jsonl\nprompt_format: chatlm\nmetrics: [exact_match]\n")
    return _run(p), ["t.yaml:3", "'chatlm'", "did you mean 'chatml'"]


# ---------------------------------------------------------------- answers made elsewhere

@case
def case_responses_file_missing(p):
    (p.root / "answers.jsonl").unlink()
    return _run(p), ["models.mine.responses: file not found"]


@case
def case_responses_line_not_json(p):
    p.write("answers.jsonl", (p.root / "answers.jsonl").read_text() + "{oops\n")
    return _run(p), ["answers.jsonl:3", "not valid JSON"]


@case
def case_responses_row_without_the_answer_field(p):
    p.write("answers.jsonl", json.dumps({"instruction": ROWS[0]["instruction"], "text": "cold"}) + "\n")
    return _run(p), ["answers.jsonl:1", "missing field 'model_response'", "models.mine.field"]


@case
def case_responses_too_few_rows(p):
    p.write("answers.jsonl", json.dumps({"instruction": ROWS[0]["instruction"], "input": "",
                                         "model_response": "cold"}) + "\n")
    return _run(p), ["no answer for task t item", "has 1 answers for the task's 2 items"]


# ---------------------------------------------------------------- judges

@case
def case_judge_server_down(p):
    from fake_judge_server import free_port

    p.config_text(extra=f"judge: {{backend: 'ollama:llama3', host: 'http://127.0.0.1:{free_port()}'}}\n")
    return _run(p), ["Ollama is not reachable"]


class _HtmlServer:
    """A web server that is not Ollama: every path answers an HTML page with HTTP 200 (started
    once, on first use, for the whole test session; a daemon thread)."""

    url: str | None = None

    def start(self) -> str:
        if self.url:
            return self.url
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Page(BaseHTTPRequestHandler):
            def _page(self):
                body = b"<!doctype html><html><body>It works!</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _page

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.url


_HTML = _HtmlServer()


@case
def case_ollama_host_is_a_web_page(p):
    url = _HTML.start()
    p.config_text(extra=f"judge: {{backend: 'ollama:llama3', host: '{url}'}}\n")
    return _run(p), ["not Ollama's JSON", "OLLAMA_HOST", "--judge none"]


@case
def case_openai_base_url_is_a_web_page(p):
    url = _HTML.start()
    p.config_text(extra=f"judge: {{backend: 'openai:gpt-4o-mini', base_url: '{url}/v1', api_key: x}}\n")
    return _run(p), ["not an OpenAI-compatible API", "OPENAI_BASE_URL"]


@case
def case_unknown_judge(p):
    p.config_text(extra="judge: {backend: 'ollama:llama3', judges: [no-such-judge]}\n")
    return _run(p), ["judge 'no-such-judge' not found"]


@case
def case_misspelled_judge(p):
    p.config_text(extra="judge: {backend: 'ollama:llama3', judges: [reference-0-10]}\n")
    return _run(p), ["judge 'reference-0-10' not found", "did you mean 'reference-0-100'"]


@case
def case_unknown_judge_backend(p):
    p.config_text(extra="judge: 'foo:bar'\n")
    return _run(p), ["foo:bar"]


@case
def case_judge_yaml_broken(p):
    p.write("j/judge.yaml", "name: j\nkind: [pointwise\n")
    p.config_text(extra=f"judge: {{backend: 'ollama:llama3', judges: ['{p.root / 'j'}']}}\n")
    return _run(p), ["judge.yaml:", "YAML"]


@case
def case_judge_template_escapes_the_sandbox(p):
    p.write("j/judge.yaml", "name: j\nkind: pointwise\nscale: {min: 0, max: 10}\nprompts: {en: p.j2}\n")
    p.write("j/p.j2", "{{ answer }} {{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    p.config_text(extra=f"judge: {{backend: 'ollama:llama3', judges: ['{p.root / 'j'}']}}\n")
    return _run(p), ["p.j2", "sandbox"]


# ---------------------------------------------------------------- prompt formats

@case
def case_unknown_prompt_format(p):
    p.fake_model()
    p.config_text("  m: {path: m/base, prompt_format: alpacca}\n")
    return ["models", "-c", str(p.config)], ["alpacca"]


# ---------------------------------------------------------------- benchmarks (checked before any model loads)

@case
def case_misspelled_benchmark(p):
    p.fake_model()
    p.config_text("  m: {path: m/base}\n", extra="benchmarks: [mmlu-mnii]\n")
    return _run(p), ["unknown benchmark 'mmlu-mnii'", "mmlu-mini"]


@case
def case_benchmark_listed_twice(p):
    p.fake_model()
    p.config_text("  m: {path: m/base}\n", extra="benchmarks: [mmlu-mini, mmlu-mini]\n")
    return _run(p), ["'mmlu-mini' is listed twice"]


@case
def case_benchmark_on_the_command_line_misspelled(p):
    p.fake_model()
    p.config_text("  m: {path: m/base}\n")
    return _run(p, "--benchmarks", "kmmlu-mni"), ["unknown benchmark 'kmmlu-mni'", "kmmlu-mini"]


# ---------------------------------------------------------------- gates (checked before the run)

@case
def case_gate_rule_syntax_error(p):
    p.config_text(extra="gates: ['mine.exact_match >>= 0.5']\n")
    return _run(p, "--gate"), ["gates[0]", "a rule is 'SCORE OP NUMBER'"]


@case
def case_gate_on_a_misspelled_metric(p):
    p.config_text(extra="gates: ['mine.exact_mach >= 0.5']\n")
    return _run(p, "--gate"), ["unknown metric 'exact_mach'", "did you mean 'exact_match'"]


@case
def case_gate_flag_without_gates(p):
    return _run(p, "--gate"), ["--gate: the config has no 'gates:'", "docs/gates.md"]


@case
def case_gate_on_a_misspelled_metric_with_groups_switched_off(p):
    """Groups the flags turned off fail closed at gate time; a name that no group could hold is
    still a typo (it once came out as "configured but not run", exit 1, after the whole run)."""
    p.config_text(extra="benchmarks: [mmlu-mini]\njudge: {backend: 'ollama:llama3'}\n"
                        "gates: ['mine.exact_mach >= 0.5']\n")
    return _run(p, "--gate", "--benchmarks", "none", "--judge", "none"), ["unknown metric 'exact_mach'",
                                                                          "did you mean 'exact_match'"]


@case
def case_gate_on_an_unknown_model(p):
    p.config_text(extra="gates: ['theirs.exact_match >= 0.5']\n")
    return _run(p), ["unknown model 'theirs'"]


@case
def case_gate_max_drop_without_a_baseline_file(p):
    p.config_text(extra="baseline: nosuch\ngates: [{max_drop: {exact_match: 0.1}}]\n")
    return _run(p, "--gate"), ["nosuch"]


# ---------------------------------------------------------------- run directories and readers

@case
def case_resume_a_folder_that_is_not_a_run(p):
    (p.root / "notarun").mkdir()
    return _run(p, "--resume", str(p.root / "notarun")), ["not a run directory"]


@case
def case_report_on_a_missing_run(p):
    return ["report", str(p.root / "out" / "nope")], ["does not exist"]


@case
def case_report_on_a_file(p):
    return ["report", str(p.config)], ["not a run directory"]


@case
def case_gate_on_a_missing_run(p):
    return ["gate", str(p.root / "out" / "nope")], ["nope"]


# ---------------------------------------------------------------- the checks

def _invoke(args: list[str]):
    return CliRunner().invoke(app, args, env={"COLUMNS": "400", "NO_COLOR": "1"})


def _assert_one_clean_line(result, expected: list[str]) -> str:
    out = result.output
    assert result.exit_code == 2, (result.exit_code, out, result.exception)
    assert "Traceback" not in out
    lines = [x for x in out.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for want in expected:
        assert want.lower() in lines[0].lower(), (want, lines[0])
    return lines[0]


def test_the_valid_project_runs(tmp_path):
    p = _valid(tmp_path)
    result = _invoke(_run(p))
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_a_task_encoding_reads_legacy_korean_files(tmp_path):
    """The fix the non-UTF-8 error names: `encoding: cp949` on the task reads the file."""
    p = _valid(tmp_path)
    rows = [{"instruction": "대한민국의 수도는?", "input": "", "output": "서울"}]
    p.write("data.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("cp949"))
    p.write("t.yaml", "name: t\ndata: data.jsonl\nencoding: cp949\nmetrics: [exact_match]\n")
    p.write("answers.jsonl", json.dumps({"instruction": "대한민국의 수도는?", "input": "", "model_response": "서울"},
                                        ensure_ascii=False) + "\n")
    result = _invoke(_run(p))
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    sample = json.loads((run / "samples" / "mine" / "t.jsonl").read_text(encoding="utf-8"))
    assert sample["instruction"] == "대한민국의 수도는?" and sample["metrics"]["exact_match"] == 1.0


def test_valid_gates_pass_the_preflight_and_gate_the_run(tmp_path):
    p = _valid(tmp_path)
    p.config_text(extra="gates: ['mine.exact_match >= 0.5', 'mine.t.length_chars > 0']\ncoverage: {min_n: 1}\n")
    assert _invoke(_run(p, "--gate")).exit_code == 0
    p.config_text(extra="gates: ['mine.exact_match >= 1.5']\ncoverage: {min_n: 1}\n")  # a real failure: exit 1
    result = _invoke(_run(p, "--gate"))
    assert result.exit_code == 1, result.output
    # the same passing gate on an aggregate below the default coverage (n=10) fails closed
    p.config_text(extra="gates: ['mine.exact_match >= 0.5']\n")
    result = _invoke(_run(p, "--gate"))
    assert result.exit_code == 1 and "insufficient data" in result.output, result.output


def test_gates_on_groups_switched_off_on_the_command_line_fail_closed_not_up_front(tmp_path):
    """A gate on a benchmark or judge that flags turned off (`--benchmarks none`, `--judge none`)
    or on a model left out by `--models` is a failed gate at the end (exit 1), not an input error."""
    p = _valid(tmp_path)
    p.config_text("  mine: {responses: answers.jsonl}\n  other: {responses: answers.jsonl}\n",
                  extra="benchmarks: [mmlu-mini]\njudge: {backend: 'ollama:llama3'}\n"
                        "gates: ['mine.mmlu-mini.acc >= 0.1', 'mine.judge >= 1', 'other.exact_match >= 0.5']\n")
    args = _run(p, "--benchmarks", "none", "--judge", "none", "--models", "mine")
    assert _invoke(args).exit_code == 0
    result = _invoke([*args, "--gate"])
    assert result.exit_code == 1 and "fail-closed" in result.output, result.output


def test_max_drop_keys_are_checked_against_the_baseline_before_the_run(tmp_path):
    p = _valid(tmp_path)
    assert _invoke(_run(p)).exit_code == 0
    run = next((tmp_path / "out").iterdir())
    assert _invoke(["baseline", "save", str(run), "--name", "b", "--dir", str(tmp_path / "baselines")]).exit_code == 0
    p.config_text(extra="baseline: b\ngates: [{max_drop: {exact_mach: 0.1}}]\n")
    line = _assert_one_clean_line(_invoke(_run(p, "--gate")), ["max_drop.exact_mach", "did you mean 'exact_match'"])
    assert "baseline 'b'" in line
    p.config_text(extra="baseline: b\ngates: [{max_drop: {exact_match: 0.1}}]\ncoverage: {min_n: 1}\n")
    assert _invoke(_run(p, "--gate")).exit_code == 0


def test_there_are_at_least_45_cases():
    assert len(CASES) >= 45


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    p = _valid(tmp_path / "project")
    args, expected = CASES[name](p)
    _assert_one_clean_line(_invoke(args), expected)
    out = p.root / "out"
    assert not out.exists() or not any(out.iterdir()), f"a run directory was left: {list(out.iterdir())}"


# ---------------------------------------------------------------- random corruption (property)

def _corrupt(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    for kind, at, length, junk in ops:
        at = at % (len(data) + 1)
        if kind == 0:    # delete a range
            data = data[:at] + data[at + length:]
        elif kind == 1:  # insert bytes (any: quotes, braces, colons, invalid UTF-8)
            data = data[:at] + junk + data[at:]
        elif kind == 2:  # overwrite
            data = data[:at] + junk + data[at + len(junk):]
        elif kind == 3:  # truncate
            data = data[:at]
        else:            # duplicate a line
            lines = data.splitlines(keepends=True)
            if lines:
                i = at % len(lines)
                data = b"".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
    return data


_JUNK = [b"{", b"}", b"[", b"]", b":", b",", b'"', b"'", b"\n", b"  ", b"- ", b"#", b"\xff\xfe", b"\x00",
         b"null", b"true", b"off", b"-1", b"1e999", b"\xed\x95\x9c", b"{{ x }}", b"&a", b"*a", b"!!python/object"]


def test_random_corruptions_never_show_a_traceback(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    op = st.tuples(st.integers(0, 4), st.integers(0, 400), st.integers(1, 12), st.sampled_from(_JUNK))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(target=st.sampled_from(["harness.yaml", "data.jsonl", "t.yaml", "answers.jsonl"]),
           ops=st.lists(op, min_size=1, max_size=4))
    def check(target, ops):
        p = _valid(tmp_path_factory.mktemp("fuzz"))
        path = p.root / target
        path.write_bytes(_corrupt(path.read_bytes(), ops))
        result = _invoke(_run(p))
        out = result.output
        assert "Traceback" not in out, out
        assert result.exit_code in (0, 2), (result.exit_code, out, result.exception)
        if result.exit_code == 2:
            lines = [x for x in out.splitlines() if x.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), out
            assert not (p.root / "out").exists() or not any((p.root / "out").iterdir())

    check()
