"""The numbered notebooks: they run in quick mode (as in CI), papermill reruns them with other
settings without touching the stored results, and their saved text names no machine or
development history."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
from execute import execute, notebooks  # noqa: E402

#: what a reader's copy must never show: this machine's folders, run folders, rounds of work
FORBIDDEN = re.compile(r"/work/|/tmp/|/root/|/home/|\.\./shared|PAPER\.md|\bsessions?\b"
                       r"|\bissue #?\d|\bs\d{1,2}/|_s\d{1,2}_|\bround \d", re.IGNORECASE)


def stored_results():
    return sorted((p.name, p.stat().st_mtime_ns) for p in (NOTEBOOKS / "results").iterdir())


def errors(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Quick mode, no display, and a cache of its own for whatever the notebook computes."""
    monkeypatch.setenv("L2L_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("L2L_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("L2L_REFRESH", raising=False)
    return tmp_path


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path, isolated):
    before = stored_results()
    copy = isolated / path.name
    copy.write_text(path.read_text())
    nb = execute(copy, save=False, timeout=600)
    assert not errors(nb)
    assert stored_results() == before, "a notebook run must not write into notebooks/results"


def test_papermill_reruns_with_another_seed(isolated):
    """Other settings are computed, never read from the stored results, which stay untouched."""
    papermill = pytest.importorskip("papermill")
    before = stored_results()
    out = isolated / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "02_mnist.ipynb"), str(out), cwd=str(ROOT),
                               progress_bar=False,
                               parameters={"SEED": 7, "RUNS": 3, "TUNE_RUNS": 2})
    nb = nbformat.read(out, as_version=4)
    assert not errors(nb)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "computing" in text and "seed=7" in text and "runs=3" in text
    assert stored_results() == before
    assert list((isolated / "cache" / "results").glob("*.pt")), "computed results are cached"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_saved_notebook_is_an_article(path):
    """Executed with plots, one parameters cell that states the cost of a rerun, an explorer,
    and no machine paths or development history in any cell or output."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code if c.source.strip())
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert not errors(nb)
    assert nb.metadata.kernelspec.name == "python3", "papermill and Jupyter need the kernel's name"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters' holds the notebook's settings"
    assert "SEED" in tagged[0].source and "Cost of running every cell" in tagged[0].source
    assert any("explorer(" in c.source for c in code), "each notebook ends with an explorer"
    for cell in nb.cells:
        outputs = [o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", [])]
        for text in [cell.source, *outputs]:
            found = FORBIDDEN.search(text)
            assert not found, f"{path.name}: {found.group(0)!r} in {text[:80]!r}"


def test_one_source_per_notebook():
    """The .ipynb files are the source: no generator scripts, no absolute paths."""
    assert not (NOTEBOOKS / "src").exists()
    for path in NOTEBOOKS.rglob("*"):
        if path.suffix in (".py", ".ipynb", ".md"):
            assert "/work/" not in path.read_text(), path
