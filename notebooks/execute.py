"""Execute the numbered notebooks in place and save them with their outputs.

    python notebooks/execute.py                 # every notebook, full mode, saved in place
    python notebooks/execute.py 01 02           # the ones whose names start with these
    L2L_QUICK=1 python notebooks/execute.py 01  # quick mode (as CI runs them)
    python notebooks/execute.py --refresh 04    # recompute 04's stored results in results/

Quick mode shortens every training and evaluation; the saved notebooks are executed in full mode,
from the results stored in ``notebooks/results/`` where their settings match. ``--refresh``
recomputes every stored result of the notebooks named (their ``REFRESH`` parameter) and does not
save the notebooks: run it again without ``--refresh`` to save them (``make notebook-results``
does both).
"""

from __future__ import annotations

import os
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
    args = sys.argv[1:]
    refresh = "--refresh" in args
    if refresh:
        os.environ["L2L_REFRESH"] = "1"  # read by each notebook's parameters cell
        args.remove("--refresh")
    for path in notebooks(args):
        started = time.time()
        execute(path, save=not refresh)
        print(f"{path.name}: executed in {time.time() - started:.0f} s")
