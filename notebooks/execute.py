"""Execute the numbered notebooks in place and save them with their outputs.

    python notebooks/execute.py                 # every notebook, full mode
    python notebooks/execute.py 01 02           # the ones whose names start with these
    L2L_QUICK=1 python notebooks/execute.py 01  # quick mode (as CI runs them)

Quick mode shortens every training and evaluation; the saved notebooks are executed in full mode.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def notebooks(prefixes=()) -> list[Path]:
    found = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(x) for x in prefixes)]
    return found


def execute(path: Path, save: bool = True, timeout: int = 3600) -> nbformat.NotebookNode:
    """Run every cell of ``path`` with the notebook's folder as working directory."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    if save:
        nbformat.write(nb, path)
    return nb


if __name__ == "__main__":
    for path in notebooks(sys.argv[1:]):
        started = time.time()
        execute(path)
        print(f"{path.name}: executed in {time.time() - started:.0f} s")
