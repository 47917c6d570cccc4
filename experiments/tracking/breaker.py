"""The tracking process's account of failed calls, and its circuit breaker.

After two failed MLflow calls in a row the store counts as down: the calls of the next
``RETRY_AFTER`` seconds are skipped (counted, never attempted), so that a dead server costs the
tracking process a few timeouts rather than one per record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

RETRY_AFTER = 10.0  # seconds the tracking process skips calls after the store failed twice in a row

_log = logging.getLogger(__name__)


class Lost(Exception):
    """A record that could not be written (already counted)."""


@dataclass
class Trouble:
    """What failed in the tracking process, and the circuit breaker of a store that stopped answering."""

    failed: int = 0
    skipped: int = 0
    first_error: str | None = None
    trials: set = field(default_factory=set)
    study: bool = False
    in_a_row: int = 0
    down_since: float | None = None

    def lost(self, key) -> None:
        if key == "study":
            self.study = True
        elif isinstance(key, int):
            self.trials.add(key)

    def call(self, key, fn, *args, **kwargs):
        """``fn(*args)``; a failure is counted against ``key`` and raises ``Lost``."""
        if self.down_since is not None and time.monotonic() - self.down_since < RETRY_AFTER:
            self.skipped += 1
            self.lost(key)
            raise Lost
        try:
            out = fn(*args, **kwargs)
        except Exception as err:
            self.failed += 1
            self.lost(key)
            if self.first_error is None:
                self.first_error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                _log.warning("tracking: an MLflow call failed (%s); the study goes on", self.first_error)
            self.in_a_row += 1
            if self.in_a_row >= 2:
                self.down_since = time.monotonic()
            raise Lost from err
        self.in_a_row, self.down_since = 0, None
        return out

    def report(self) -> dict:
        return {"failed": self.failed, "skipped": self.skipped, "first_error": self.first_error,
                "trials": sorted(self.trials), "study": self.study}
