"""The committed notebook runs top to bottom (fast configuration), failing on any cell error."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "ode_trajectories.ipynb"


def test_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLAB_NOTEBOOK_STEPS", "40")
    monkeypatch.setenv("FLOWLAB_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "the committed notebook should keep its outputs"
    )
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    with open(tmp_path / "cnf_pinwheel_flow.gif", "rb") as f:
        assert f.read(6) in (b"GIF89a", b"GIF87a")
    assert (tmp_path / "notebook_cnf_trajectories.png").stat().st_size > 10_000
