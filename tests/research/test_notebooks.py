"""The notebooks in `research/`: each runs top to bottom offline, as a user would, shows its
figures inline, and is committed stripped of outputs (`research/strip_notebooks.py`).

Each notebook asserts its own key facts in a cell, so a notebook whose results broke fails
here with that cell's error.
"""

import importlib.util
import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

RESEARCH = Path(__file__).resolve().parents[2] / "research"
NOTEBOOKS = sorted(RESEARCH.glob("*.ipynb"))
EXPECTED = (
    "01_quickstart.ipynb",
    "02_signal_research.ipynb",
    "03_sweep.ipynb",
    "04_risk_controls.ipynb",
    "05_live_vs_backtest.ipynb",
)
# starts the exchange simulator on 127.0.0.1
SERVERS = {"05_live_vs_backtest.ipynb"}
# per cell; a cold numba cache compiles the sweep kernel (~1 min on 2 busy cores) in one cell
CELL_TIMEOUT_SECS = 600


def _strip_module():
    spec = importlib.util.spec_from_file_location(
        "strip_notebooks", RESEARCH / "strip_notebooks.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _params():
    for path in NOTEBOOKS:
        marks = [pytest.mark.integration] if path.name in SERVERS else []
        yield pytest.param(path, marks=marks, id=path.name)


def test_research_folder_has_the_notebooks():
    assert [p.name for p in NOTEBOOKS] == list(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs_or_counts(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i}: outputs must be stripped in git"
            assert cell.execution_count is None, f"{path.name} cell {i}: execution count"
    assert notebook.metadata.kernelspec.name == "python3"
    text = path.read_text(encoding="utf-8")
    assert _strip_module().stripped_text(text) == text, (
        f"{path.name} must be committed stripped: run `python research/strip_notebooks.py`"
    )


def test_strip_removes_outputs_counts_and_run_metadata(tmp_path: Path):
    code = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    code.metadata = {"tags": ["keep"], "execution": {"iopub.status.busy": "2026-01-01"}}
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# t"), code],
        metadata={"kernelspec": {"name": "my-venv", "display_name": "x", "language": "python"}},
    )
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    strip = _strip_module()

    assert strip.main(["--check", str(path)]) == 1
    assert strip.main([str(path)]) == 0
    stripped = json.loads(path.read_text())
    cell = stripped["cells"][1]
    assert cell["outputs"] == []
    assert cell["execution_count"] is None
    assert cell["metadata"] == {"tags": ["keep"]}
    assert stripped["metadata"]["kernelspec"]["name"] == "python3"
    assert "".join(cell["source"]) == "print(1)"
    assert strip.main(["--check", str(path)]) == 0  # idempotent


@pytest.mark.parametrize("path", list(_params()))
def test_notebook_runs_and_shows_figures(path: Path, monkeypatch: pytest.MonkeyPatch):
    # as in CI (.ci/run): the kernel inherits MPLBACKEND=Agg, and the figures must still be
    # embedded (each notebook selects the inline backend itself)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECS,
        kernel_name="python3",
        resources={"metadata": {"path": str(RESEARCH)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}")
    elapsed = time.perf_counter() - started
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert figures, f"{path.name} must show its figures inline (image/png outputs)"
    print(f"{path.name}: {elapsed:.1f} s, {len(figures)} figures")
