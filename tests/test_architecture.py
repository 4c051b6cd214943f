"""The layer contracts in pyproject.toml hold, and they would catch an import that points the wrong way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c",
        "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # cwd and PYTHONPATH first: the copy under test is found before the editable install
    return subprocess.run([*LINT, "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    for package in ("harstream", "training", "replay"):
        skip = shutil.ignore_patterns("*.keras", "__pycache__")
        shutil.copytree(ROOT / package, tmp_path / package, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("harstream/signal/chain.py", "from harstream.serve import client", "Layers"),
        ("harstream/data/hapt.py", "from harstream.model import artifact", "Layers"),
        ("harstream/engine/core.py", "import keras", "TensorFlow"),
        ("harstream/data/splits.py", "import zmq", "ZeroMQ"),
        ("harstream/model/artifact.py", "import argparse", "argparse"),
        ("harstream/tools/export.py", "import training.architectures", "never imports training"),
        ("training/augment.py", "import replay.plot", "Layers"),
        ("harstream/serve/join.py", "import harstream.cluster.rendezvous", "Layers"),
        ("harstream/cluster/router.py", "import ray", "Ray"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = _copy(tmp_path)
    _append(root / module, line)
    result = _lint(root)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
    assert module.removesuffix(".py").replace("/", ".") in broken
