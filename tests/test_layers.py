"""The import direction of STYLE.md §1, checked on the source with `ast` (no imports run).

- `signals/` never imports `sim` or `live_bridge`; nothing outside `live_bridge` imports it.
- Kernel modules (`nb.py`) import only numpy, numba and other kernel-level modules.
- `live_bridge` takes from `sim` only the fill model (for PAPER mode).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL_OK = (
    "numpy", "numba", "math", "signals.enums", "signals._math", "signals._prefetch",
    "signals.records", "sim.enums",
)  # fmt: skip
LIVE_MAY_USE_FROM_SIM = ("sim.nb", "sim.enums", "sim.engine")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_signals_imports_neither_sim_nor_live_bridge():
    bad = [
        (str(p.relative_to(ROOT)), name)
        for p in _files("signals")
        for name in _imports(p)
        if name.split(".")[0] in ("sim", "live_bridge")
    ]
    assert not bad


@pytest.mark.parametrize("package", ["signals", "sim"])
def test_nothing_outside_live_bridge_imports_live_bridge(package):
    bad = [
        (str(p.relative_to(ROOT)), name)
        for p in _files(package)
        for name in _imports(p)
        if name.split(".")[0] == "live_bridge"
    ]
    assert not bad


def test_kernel_modules_import_only_kernel_level_modules():
    bad = []
    for path in [*_files("signals"), *_files("sim")]:
        if not (path.name == "nb.py" or path.name.endswith("_nb.py")):
            continue
        for name in _imports(path):
            kernel_module = name.endswith(".nb") or name.endswith("_nb")
            if not (
                kernel_module or any(name == ok or name.startswith(ok + ".") for ok in KERNEL_OK)
            ):
                bad.append((str(path.relative_to(ROOT)), name))
    assert not bad


def test_live_bridge_takes_only_the_fill_model_from_sim():
    bad = [
        (str(p.relative_to(ROOT)), name)
        for p in _files("live_bridge")
        for name in _imports(p)
        if name.split(".")[0] == "sim" and name not in LIVE_MAY_USE_FROM_SIM
    ]
    assert not bad
