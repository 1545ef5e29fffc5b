"""Execute every notebook in `research/` offline, as a user would, and fail on any error."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

RESEARCH = Path(__file__).resolve().parents[2] / "research"
NOTEBOOKS = sorted(RESEARCH.glob("*.ipynb"))


def test_research_folder_has_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {RESEARCH}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_without_error(path: Path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: outputs must be stripped in git"
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(RESEARCH)}},
    )
    client.execute()
    errors = [
        out
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
