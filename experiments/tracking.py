"""Where runs are recorded. All MLflow calls of the harness live in this module.

A tracker receives the life of a study and its trials: ``start_trial`` → ``log_epoch`` per
epoch → ``end_trial``. ``NullTracker`` records nothing (``tracking=none``).
"""

from typing import Any


class NullTracker:
    """Tracking switched off: every call does nothing."""

    location = "tracking off"

    def start_study(self, study, cfg) -> None:
        """Open (or reopen) the study's record."""

    def start_trial(self, number: int, cfg, values: dict[str, Any]) -> None:
        """Open a trial's record."""

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        """One epoch's metrics."""

    def end_trial(self, state: str, final: dict[str, float], result=None, reason: str | None = None) -> None:
        """Close the trial's record with its state: complete, pruned or failed."""

    def end_study(self, study) -> None:
        """Close the study's record with the summary."""


def make_tracker(cfg) -> NullTracker:
    """The tracker ``cfg.tracking`` asks for."""
    return NullTracker()
