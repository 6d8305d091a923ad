"""The notebook runs top to bottom on a trained run and draws its picture."""

from __future__ import annotations

import os

import nbformat
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "edit_faces.ipynb"


def test_the_notebook_restores_a_run_edits_faces_and_shows_them(trained_run, monkeypatch):
    monkeypatch.setenv("MSAGAN_WORKDIR", os.fspath(trained_run))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.fspath(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no picture"
    assert any("judge saw the mouth open" in o.get("text", "") for o in outputs)
