"""The built wheel is complete: it carries the demo (config, data, tasks, baseline, both adapters),
the judges and the report templates, installs into a fresh venv, and from an empty folder
`harness --version` and a demo run work with no config, the run landing in ./reports there.

The fresh venv gets no packages of its own beyond the wheel (installed with --no-deps): a .pth
file lets it see this interpreter's site-packages (torch, transformers, ...), so nothing is
downloaded. Its `harness` is the installed wheel's, not this checkout's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

import harness

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEMO_FILES = ["harness.yaml", "baselines/demo.json", "data/test.jsonl", "data/sft_train.jsonl", "data/dpo_train.jsonl",
              "tasks/demo.yaml", "tasks/demo-en.yaml", "tasks/demo-ko.yaml", "tasks/demo-json.yaml",
              "tasks/demo-pref.yaml", "data/dpo_test.jsonl",
              "sft/adapter_config.json", "sft/adapter_model.safetensors", "sft/tokenizer.json",
              "dpo/adapter_config.json", "dpo/adapter_model.safetensors", "dpo/tokenizer.json"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel --no-deps --no-build-isolation` of a copy of the sources (the checkout stays clean;
    setuptools comes from this environment, so nothing is downloaded)."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "harness", src / "harness", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # setuptools prints its deprecation notices as boxes of asterisks (e.g. a license given as a table)
    assert "Deprecat" not in proc.stdout + proc.stderr and "*" * 20 not in proc.stdout + proc.stderr
    (whl,) = (tmp / "dist").glob("*.whl")
    return whl


def test_the_distribution_name_is_not_the_taken_one():
    assert PROJECT["project"]["name"] == "checkpoint-harness"
    assert PROJECT["project"]["scripts"]["harness"] == "harness.cli:app"
    assert PROJECT["project"]["license"] == "Apache-2.0" and PROJECT["project"]["license-files"] == ["LICENSE"]


def test_the_wheel_carries_the_demo_judges_and_templates(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        shipped = {n: zf.getinfo(n).file_size for n in names}
    assert wheel.name.startswith("checkpoint_harness-")
    for rel in DEMO_FILES:
        assert f"harness/demo/{rel}" in names, rel
        assert shipped[f"harness/demo/{rel}"] == (ROOT / "harness" / "demo" / rel).stat().st_size, rel
    for judge in ("reference-0-100", "pairwise", "single-1-10"):
        assert f"harness/judges/{judge}/judge.yaml" in names
    assert "harness/report/templates/report.html.j2" in names
    assert any(n.startswith("harness/data/") for n in names)
    assert "License-Expression: Apache-2.0" in meta and "Classifier: Programming Language :: Python :: 3" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "examples/", "bench/")) for n in names)


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with only the wheel installed; this interpreter's site-packages are visible
    through a .pth file (they come after the venv's own, so the wheel's harness wins)."""
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "outer-site-packages.pth").write_text(
        "\n".join(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])) + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", "--quiet", str(wheel)], capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", COLUMNS="200",
               NO_COLOR="1")
    return env


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_from_an_empty_folder(venv, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    exe = venv / "bin" / "harness"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
                           cwd=work, env=_env(), capture_output=True, text=True, check=False, timeout=60)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel's, not this checkout's

    version = subprocess.run([str(exe), "--version"], cwd=work, env=_env(), capture_output=True, text=True,
                             check=False, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"harness {harness.__version__}", version

    proc = subprocess.run([str(exe), "run", "--models", "base,sft", "--limit", "2", "--benchmarks", "none",
                           "--judge", "none", "--quiet"], cwd=work, env=_env(), capture_output=True, text=True,
                          check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = (work / "reports").iterdir()
    assert f"run directory: {run}" in proc.stdout
    scores = (run / "scores.json").read_text()
    for group in ("demo-en", "demo-ko", "demo-json"):
        assert f'"{group}"' in scores
    assert (run / "report.html").is_file() and (run / "report.md").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["reports"]  # nothing else written here
