"""Ready-made experiments that put neural-network folklore to the test (``conf/experiment/``).

``python run.py experiment=NAME`` runs the experiment's sweep, then :func:`run_findings` reads the
study back and writes its findings (``findings/NAME/findings.{csv,md}`` and figures). One module per
experiment holds its ``findings(study) -> Findings``; :mod:`.pages` copies the findings into
docs/findings.md and the README's table.
"""

import time
from dataclasses import replace
from importlib import import_module
from pathlib import Path

from omegaconf import DictConfig

from experiments.config import FOLKLORE, FOLKLORE_VARIANTS

from ..loading import load_optuna_study
from .common import Findings, FindingsError, StudyData, findings_name, read_study, write_findings

EXPERIMENTS = FOLKLORE  # the experiments with findings
# every findings folder, in the order of docs/findings.md: each experiment, then its variants on other data
NAMES = tuple(n for e in EXPERIMENTS for n in (e, *(v for v, of in FOLKLORE_VARIANTS.items() if of == e)))

__all__ = ["EXPERIMENTS", "NAMES", "Findings", "FindingsError", "StudyData", "read_study", "run_findings",
           "write_findings"]


def run_findings(cfg: DictConfig) -> Path:
    """Compute and write the findings of experiment ``cfg.findings.experiment`` from its study; the folder."""
    start = time.perf_counter()
    module = import_module(f"{__name__}.{cfg.findings.experiment}")
    study = read_study(cfg, getattr(module, "CONFIG_KEYS", ()))
    findings = replace(module.findings(study), experiment=findings_name(cfg))
    findings.notes.append(f"{timing(study)}; findings computed in {time.perf_counter() - start:.0f} s.")
    return write_findings(findings, cfg, study.record)


def timing(study: StudyData) -> str:
    """How long the study's trials took: from the first start to the last completion, wall time."""
    optuna_study = load_optuna_study(study.record)
    trials = [] if optuna_study is None else optuna_study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if not starts or not ends:
        return f"{len(study.trials)} trials"
    span = (max(ends) - min(starts)).total_seconds()
    return (f"{len(trials)} trials in {span:.0f} s wall from the first start to the last end "
            f"({study.cfg.sweep.n_workers} workers; a resumed study counts its pauses)")
