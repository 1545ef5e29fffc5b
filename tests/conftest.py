"""Suite-wide settings.

Under CI (`CI` set, as `.ci/run` runs) hypothesis is derandomized: every run tries the same
examples, so a green commit stays green and a red one is reproducible. Local runs keep random
exploration (and hypothesis' example database), which is where new counterexamples come from.

The numba cache is keyed to the kernel sources (`kernel_source_key`): the suite, and every
process it starts, caches under `<NUMBA_CACHE_DIR or .numba_cache>/src-<key>`. Numba checks
only the file of the kernel it loads, so an edited callee in another file would otherwise run
stale machine code; with the key, any edit under `signals/` or `sim/` starts a fresh cache.
"""

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

from hypothesis import settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KERNEL_PACKAGES = ("signals", "sim")
STALE_CACHE_SECONDS = 86_400.0


def kernel_source_key(root: Path = PROJECT_ROOT) -> str:
    """Return a 16-hex-digit BLAKE2b key of every `.py` file (path and bytes) under the
    kernel packages (`signals/`, `sim/`) of `root`."""
    digest = hashlib.blake2b(digest_size=8)
    for package in KERNEL_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _use_keyed_numba_cache() -> None:
    # set before any kernel module is imported; an already imported numba re-reads its config
    key = f"src-{kernel_source_key()}"
    base = Path(os.environ.get("NUMBA_CACHE_DIR") or PROJECT_ROOT / ".numba_cache")
    if base.name == key:  # a process this suite started (a notebook kernel, a CLI) inherits it
        return
    if base.name.startswith("src-"):
        base = base.parent
    keyed = base / key
    keyed.mkdir(parents=True, exist_ok=True)
    os.utime(keyed)  # marks it in use for the pruning below
    os.environ["NUMBA_CACHE_DIR"] = str(keyed)
    if "numba" in sys.modules:
        from numba.core import config  # noqa: PLC0415

        config.reload_config()
    # caches of older sources, unused for a day, are only disk
    for old in base.glob("src-*"):
        if old != keyed and time.time() - old.stat().st_mtime > STALE_CACHE_SECONDS:
            shutil.rmtree(old, ignore_errors=True)


_use_keyed_numba_cache()

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
