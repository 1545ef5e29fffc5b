"""Strip outputs, execution counts and run metadata from the notebooks in `research/`.

Notebooks are committed without outputs (the test suite executes them, and outputs would make
every diff a wall of base64 PNGs). Run this before committing a notebook you ran in JupyterLab:

    .venv/bin/python research/strip_notebooks.py            # strip every research/*.ipynb
    .venv/bin/python research/strip_notebooks.py --check    # exit 1 and name unstripped ones

`tests/research/test_notebooks.py` fails on a committed notebook that differs from its stripped
form. What is kept: cell sources, cell ids, cell tags, and the `python3` kernelspec (any other
kernel name would fail with `NoSuchKernel` where that kernel is not registered).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

RESEARCH = Path(__file__).resolve().parent
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
KEPT_CELL_METADATA = ("tags",)


def strip(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return `notebook` without outputs, execution counts and run metadata (in place)."""
    for cell in notebook.cells:
        cell.metadata = nbformat.from_dict(
            {k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA}
        )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata = nbformat.from_dict(
        {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    )
    return notebook


def stripped_text(text: str) -> str:
    """Return the stripped form of a notebook's JSON text, as `nbformat.write` writes it."""
    notebook = strip(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
    nbformat.validate(notebook)
    text = nbformat.writes(notebook)
    return text if text.endswith("\n") else text + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Strip the given notebooks (default: every `research/*.ipynb`); `--check` only reports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: research/)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if any needs stripping"
    )
    args = parser.parse_args(argv)
    paths = args.paths or sorted(RESEARCH.glob("*.ipynb"))
    unstripped = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        clean = stripped_text(text)
        if clean == text:
            continue
        unstripped.append(path)
        if not args.check:
            path.write_text(clean, encoding="utf-8")
    verb = "needs stripping" if args.check else "stripped"
    for path in unstripped:
        print(f"{verb}: {path}")
    return 1 if args.check and unstripped else 0


if __name__ == "__main__":
    sys.exit(main())
