"""The README is part of the product: its examples run, and CI runs its test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_readme_opens_with_the_two_setup_commands() -> None:
    first = _blocks("sh")[0].strip().splitlines()
    assert README.index("```sh") < README.index("\n## ")
    assert len(first) == 2
    assert first[0].endswith("cardledger demo")
    assert "pytest" in first[1] and "ruff check" in first[1] and "mypy" in first[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _blocks("sh")[0].strip().splitlines()[1]
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith("#")]
    assert test_command in ci_lines


@pytest.mark.parametrize("number", range(len(_blocks("python"))))
def test_readme_python_examples_run(number: int, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_blocks("python")[number])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_readme_python_examples_pass_mypy_strict(tmp_path: Path) -> None:
    for number, block in enumerate(_blocks("python")):
        (tmp_path / f"example_{number}.py").write_text(block)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         *sorted(str(p) for p in tmp_path.glob("example_*.py"))],
        cwd=ROOT, env={**os.environ, "MYPYPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout


def test_readme_names_the_model_version_the_code_has() -> None:
    from projections.runner import MODEL_VERSION

    assert f"model version {MODEL_VERSION} today" in README
    assert re.findall(r"\bmodel (?:version )?(\d+)\b", README) == [str(MODEL_VERSION)]


def test_readme_map_names_every_room() -> None:
    rooms = {p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("*/*/__init__.py")
             if p.parent.parts[-2] in ("ledger", "projections", "adapters")}
    (tree,) = _blocks("text")[:1]
    missing = sorted(r for r in rooms if f"  {r.split('/')[-1]}/" not in tree)
    assert not missing, missing
