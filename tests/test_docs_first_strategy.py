"""docs/first_strategy.md runs as written: its files are written, its commands and its Python
block are executed in a scratch folder, and what they print is checked."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "first_strategy.md"
BIN = Path(sys.executable).parent


def _blocks() -> list[tuple[str, str]]:
    """Return the page's fenced blocks as (language, text)."""
    return re.findall(r"```(\w+)\n(.*?)```", PAGE.read_text(), flags=re.S)


@pytest.fixture(name="workdir", scope="module")
def fixture_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("first_strategy")
    shutil.copytree(ROOT / "config", work / "my_config")
    (work / "data").symlink_to(ROOT / "data")
    for _lang, text in _blocks():
        first, _, body = text.partition("\n")
        if first.startswith("# file: "):
            target = work / first.removeprefix("# file: ").strip()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body if target.suffix == ".yaml" else text)
    return work


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def test_page_has_the_blocks_this_test_runs() -> None:
    langs = [lang for lang, _ in _blocks()]
    assert langs == ["python", "yaml", "bash", "python"]


def test_commands_run_as_written(workdir: Path) -> None:
    (bash,) = [text for lang, text in _blocks() if lang == "bash"]
    commands = [line for line in bash.splitlines() if line.strip()]
    assert [c.split()[1] for c in commands] == ["run", "sweep", "sweep"]
    outputs = []
    for command in commands:
        done = subprocess.run(
            shlex.split(command), cwd=workdir, env=_env(), capture_output=True, text=True,
            timeout=900, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr[-3000:])
        assert "Traceback" not in done.stderr
        outputs.append(done.stdout)
    report = (workdir / "reports" / "bb.json").read_text()
    assert '"bb_revert"' in report
    assert "top 3 by sharpe" in outputs[1]
    assert "window" in outputs[1]
    assert "walk-forward" in outputs[2]
    assert "out-of-sample (stitched)" in outputs[2]


def test_python_block_runs(workdir: Path) -> None:
    blocks = [text for lang, text in _blocks() if lang == "python"]
    script = blocks[1]
    assert script.startswith("# run: python")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, env=_env(), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bb_revert" in done.stdout
