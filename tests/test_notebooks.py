"""Every numbered notebook runs top to bottom in quick mode (L2L_QUICK=1), as in CI."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
from execute import execute, notebooks  # noqa: E402


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path, monkeypatch, tmp_path):
    monkeypatch.setenv("L2L_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    nb = execute(copy, save=False, timeout=600)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters' holds the notebook's settings"


def test_saved_notebooks_have_outputs_and_plots():
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code if c.source.strip()), path.name
        assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), path.name
        assert not any(o.get("output_type") == "error" for c in code for o in c.outputs), path.name
