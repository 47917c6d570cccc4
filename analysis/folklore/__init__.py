"""Ready-made experiments that put neural-network folklore to the test (``conf/experiment/``).

``python run.py experiment=NAME`` runs the experiment's sweep, then :func:`run_findings` reads the
study back and writes its findings (``findings/NAME/findings.{csv,md}`` and figures). One module per
experiment holds its ``findings(study) -> Findings``; :mod:`.readme` copies the findings into the
README's "Findings" section.
"""

from importlib import import_module
from pathlib import Path

from omegaconf import DictConfig

from .common import Findings, FindingsError, StudyData, read_study, write_findings

EXPERIMENTS = ("activations", "batch_size", "minibatch_vs_fullbatch", "optimizers", "dropout", "local_minima",
               "hidden_layers")  # = experiments.config.FOLKLORE, in the README's order

__all__ = ["EXPERIMENTS", "Findings", "FindingsError", "StudyData", "read_study", "run_findings", "write_findings"]


def run_findings(cfg: DictConfig) -> Path:
    """Compute and write the findings of experiment ``cfg.findings.experiment`` from its study; the folder."""
    module = import_module(f"{__name__}.{cfg.findings.experiment}")
    study = read_study(cfg, getattr(module, "CONFIG_KEYS", ()))
    findings = module.findings(study)
    return write_findings(findings, cfg, study.record)
