"""The small study the analysis tests share (test_loading, test_seeds, test_report, test_notebooks).

Made once per test session in a temp dir, as a user makes one: ``python run.py
experiment=quick sweep.timeout=1e-9 study_name=empty-study`` (a study whose sweep ran out of
time before its first trial: empty), then ``python run.py experiment=quick sweep.n_trials=4``
(study ``moons-quick``: 4 trials of a tiny net on two moons, some of them pruned), both writing
``mlflow.db`` and ``optuna.journal`` there. ``moons-quick`` is the study run last.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import explain, run_py

ROOT = Path(__file__).resolve().parents[1]
STUDY = "moons-quick"
EMPTY = "empty-study"


@dataclass(frozen=True)
class SmallStudy:
    folder: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"

    @property
    def storage(self) -> str:
        return str(self.folder / "optuna.journal")


def environment() -> dict:
    """os.environ with the repository importable (``python -m analysis.report`` from another directory)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run_ok(folder: Path, *overrides: str, codes=(0,)) -> None:
    """``python run.py OVERRIDES`` in ``folder`` (the repository importable); its exit code must be one of ``codes``."""
    proc = run_py(folder, *overrides, timeout=300, env=environment())
    assert proc.returncode in codes, f"run.py {' '.join(overrides)}: {explain(proc)}"


_MADE: dict[str, SmallStudy] = {}  # this test session's study, made on first use


def small_study(tmp_path_factory) -> SmallStudy:
    """The shared study (``tmp_path_factory``: pytest's session-scoped fixture)."""
    if "study" not in _MADE:
        folder = tmp_path_factory.mktemp("analysis-study")
        # "no trial completed" may exit 1: the study and its parent run exist all the same
        run_ok(folder, "experiment=quick", "sweep.timeout=1e-9", f"study_name={EMPTY}", codes=(0, 1))
        run_ok(folder, "experiment=quick", "sweep.n_trials=4")
        _MADE["study"] = SmallStudy(folder)
    return _MADE["study"]
