"""Notebooks: stored without outputs, run end to end on the reference, stop clearly on the skeleton."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIRST_TASK = {"01": "Task 1", "02": "Task 2", "03": "Task 2"}


def test_at_least_three_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"


def _execute(path: Path, pythonpath: str):
    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ["PYTHONPATH"] = pythonpath
    os.environ["MNIST_DIR"] = str(ROOT / "data" / "mnist")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return nb


@pytest.fixture(scope="module")
def reference_as_assignment(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("nbref")
    shutil.copytree(ROOT / "solutions", d / "assignment")
    return f"{d}{os.pathsep}{ROOT}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_against_reference(path, reference_as_assignment):
    nb = _execute(path, reference_as_assignment)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    if "check(" in "".join(c.source for c in nb.cells):
        assert "public checks passed" in text and "FAIL" not in text


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_stops_on_skeleton_naming_the_task(path):
    with pytest.raises(CellExecutionError) as err:
        _execute(path, str(ROOT))
    assert "NotImplementedError" in str(err.value)
    assert f"Need to implement for {FIRST_TASK[path.name[:2]]}" in str(err.value)
