"""analysis/notebooks/*.ipynb: stored without outputs, and each runs top to bottom on a small study.

The notebooks read their parameters from the environment (``NNSWEEP_RUN_DIR``, ``NNSWEEP_STUDY``,
...; see their parameters cell). They run in a ``python3`` kernel of this interpreter: the test
writes that kernel spec to a temp ``JUPYTER_PATH``, which Jupyter searches first.
"""

import json
import sys
from pathlib import Path

import pytest
from analysis_study import STUDY, environment, small_study

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "analysis" / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert {p.stem for p in NOTEBOOKS} == {"convergence", "minima"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip the outputs"
    assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells)


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """JUPYTER_PATH with a ``python3`` kernel spec running this interpreter."""
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (nnsweep tests)", "language": "python"}))
    return str(folder)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, tmp_path_factory, kernel_env, monkeypatch):
    study = small_study(tmp_path_factory)
    env = environment()
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    monkeypatch.setenv("JUPYTER_PATH", kernel_env)
    monkeypatch.setenv("NNSWEEP_RUN_DIR", str(study.folder))
    monkeypatch.setenv("NNSWEEP_STUDY", STUDY)
    for name, value in {"NNSWEEP_TOP_K": "2", "NNSWEEP_SEEDS": "1", "NNSWEEP_GRID": "7"}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(study.folder)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook draws no figure"
    assert STUDY in "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
