"""The suite's numba cache is keyed to the kernel sources (tests/conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

from numba.core import config

from tests.conftest import PROJECT_ROOT, kernel_source_key


def test_the_suite_caches_under_the_key_of_the_kernel_sources():
    key = f"src-{kernel_source_key()}"
    assert Path(os.environ["NUMBA_CACHE_DIR"]).name == key
    assert Path(config.CACHE_DIR).name == key


def test_an_edit_to_any_kernel_file_changes_the_key(tmp_path):
    for package in ("signals", "sim"):
        (tmp_path / package / "sub").mkdir(parents=True)
        (tmp_path / package / "sub" / "nb.py").write_text("x = 1\n")
    before = kernel_source_key(tmp_path)
    (tmp_path / "sim" / "sub" / "nb.py").write_text("x = 2\n")
    edited = kernel_source_key(tmp_path)
    (tmp_path / "signals" / "extra.py").write_text("")
    added = kernel_source_key(tmp_path)
    assert len({before, edited, added}) == 3


def test_a_process_the_suite_starts_inherits_the_same_cache():
    code = "from numba.core import config; print(config.CACHE_DIR)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=PROJECT_ROOT,
    ).stdout.strip()  # fmt: skip
    assert out == os.environ["NUMBA_CACHE_DIR"]
