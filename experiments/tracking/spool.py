"""The tracking process's spool: each record on local disk as it arrives, kept until MLflow has it.

Where: ``<launch dir>/outputs/tracking-spool/<experiment>/<host>-<pid>-<random>.spool`` (the records, pickled
in order), ``.done`` (one byte per record written, or given up) and ``.files/`` (each trial's weights
and config folder until its record is written). A tracking process holds an ``flock`` on its own
``.spool`` while it lives and deletes the three when everything is written.

What it guarantees:
- **In order**: records reach MLflow in the order the trials sent them; one that cannot be written
  holds back those after it.
- **A tracking server that goes away** (a restart, an outage of any length while the worker lives):
  a record whose call fails while the server does not answer ``/health`` is kept, and sent again,
  with those after it, once it answers (looked at every ``RETRY_EVERY`` s). At the end of a study the
  process waits up to ``PATIENCE`` s for the server, then leaves the rest in the spool. A failure
  while the server answers is not an outage: that record is counted as lost (``Trouble``), as before.
- **A worker killed** (``kill -9``, a preempted job) with records not yet written: the next worker
  started in the same launch dir sends them when its study's parent run is open (an orphan spool is
  one whose ``flock`` is free), and deletes them. A record reaches the spool within ~1 ms of the
  trial's ``send`` (the pipe's reader thread writes it): a kill in that instant loses it.
- **No secret on disk**: URL passwords are masked in what the spool writes (``recorder.masked``).
- **Idempotent**: a record sent again makes no second run (a trial's run is looked up by its parent
  and trial number first: ``Recorder.replaying``), no second curve point (MLflow keeps one metric per
  key, step, timestamp and value), the same tags, params and artifacts again. One exception: a
  trial's end cut off after its batch and sent again logs its objective ``value`` twice at one step
  (stamped when sent; the same number).

Not covered: records of a launch dir no worker starts in again (send them by starting one there),
a lost disk.
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import logging
import os
import pickle
import queue
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .reachable import check_reachable
from .recorder import masked
from .schema import TrackingError

RETRY_EVERY = 2.0  # seconds between looks at a tracking server that stopped answering
PATIENCE = 120.0  # seconds the end of a study waits for the server before leaving records in the spool
TRIAL_KINDS = ("trial_start", "metrics", "trial_end")  # what an adopted spool replays (not its study's own)

_log = logging.getLogger(__name__)


def spool_folder(experiment: str) -> Path:
    """The spools of MLflow experiment ``experiment`` in this launch dir."""
    return Path.cwd() / "outputs" / "tracking-spool" / experiment


class Spool:
    """The tracking process's inbox (``put`` from the pipe's reader thread, ``get``) on disk, and the
    sending of each record through a ``Recorder`` (``send``, ``retry``, ``close``)."""

    def __init__(self, recorder, folder: Path):
        self.recorder, self.folder = recorder, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"  # pids recur
        self.log = open(self.path, "ab")
        fcntl.flock(self.log, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this process lives
        self.done = open(self.path.with_suffix(".done"), "ab", buffering=0)
        self.files = self.path.with_suffix(".files")
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.seq = 0  # records put so far
        self.pending: collections.deque = collections.deque()  # (seq, record) held back by an outage
        self.tried: set[int] = set()  # seqs sent at least once (sending one again looks its run up first)
        self.next_try = 0.0
        self.resent = 0  # records written after an outage held them back
        self.adopted = 0  # records of dead workers' spools written

    # -- the inbox
    def put(self, message) -> None:
        """Write ``message`` to the spool (a trial's folder moved beside it), then queue it."""
        if message is not None and message[0] != "close":
            with self.lock:
                seq = self.seq
                self.seq += 1
                message = self._keep_folder(seq, message)
                pickle.dump(tuple(masked(list(message))), self.log)  # no URL password on disk
                self.log.flush()
            message = (seq, message)
        self.inbox.put(message)

    def get(self, timeout: float):
        """The next (seq, record), or the ``close`` message or None (raises ``queue.Empty``)."""
        return self.inbox.get(timeout=timeout)

    def _keep_folder(self, seq: int, message: tuple) -> tuple:
        if message[0] != "trial_end" or not message[-1]:
            return message
        kept = self.files / str(seq)
        self.files.mkdir(exist_ok=True)
        shutil.move(message[-1], kept)
        return (*message[:-1], str(kept))

    # -- sending
    def send(self, seq: int, message: tuple) -> None:
        """Write ``message`` to MLflow, or hold it back (with every later one) while the server is away."""
        if self.pending:
            self.pending.append((seq, message))
            return
        if self._write(seq, message):
            self._mark_done(seq, message)
        else:
            self.pending.append((seq, message))
            _log.warning("tracking: %s does not answer; the records wait in %s until it does",
                         self.recorder.settings.uri, self.path)

    def retry(self) -> None:
        """Send the held-back records, in order, if the server answers again (at most every ``RETRY_EVERY`` s)."""
        if not self.pending or time.monotonic() < self.next_try:
            return
        if not self._reachable():
            return
        held = len(self.pending)
        while self.pending:
            seq, message = self.pending[0]
            if not self._write(seq, message):
                return
            self.pending.popleft()
            self.resent += 1
            self._mark_done(seq, message)
        _log.warning("tracking: %s answers again: %d records held back were sent", self.recorder.settings.uri, held)

    def _write(self, seq: int, message: tuple) -> bool:
        """One attempt; False when it failed and the server does not answer (then nothing is counted lost)."""
        trouble = self.recorder.trouble
        before = dataclasses.replace(trouble, trials=set(trouble.trials))
        self.recorder.replaying = seq in self.tried
        self.tried.add(seq)
        self.recorder.handle(_with_copied_folder(message))
        if (trouble.failed, trouble.skipped) == (before.failed, before.skipped) or self._reachable():
            return True
        self.recorder.trouble = before  # not lost: held back
        return False

    def _reachable(self) -> bool:
        try:
            check_reachable(self.recorder.settings.uri)
        except TrackingError:
            self.next_try = time.monotonic() + RETRY_EVERY
            return False
        return True

    def _mark_done(self, seq: int, message: tuple) -> None:
        self.done.write(b".")
        if message[0] == "trial_end" and message[-1]:
            shutil.rmtree(message[-1], ignore_errors=True)
        if message[0] == "study" and self.recorder.parent is not None:
            self.adopt()

    # -- dead workers' spools
    def adopt(self) -> None:
        """Write the trial records of every spool here whose process died (its ``flock`` is free), then
        delete it; one the server stops answering for is left for later (``close`` tries again)."""
        for path in sorted(self.folder.glob("*.spool")):
            if path == self.path:
                continue
            with open(path, "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process lives
                records = read_records(handle)
                if self._replay(records, done_count(path)):
                    remove_spool(path)
                    _log.warning("tracking: the records of a dead worker's spool %s were sent", path.name)

    def _replay(self, records: list[tuple], done: int) -> bool:
        """Send the trial records of a dead worker's spool whose trial's end was not written yet."""
        ended = {m[1] for m in records[:done] if m[0] == "trial_end"}
        todo = [m for m in records if m[0] in TRIAL_KINDS and m[1] not in ended]
        opened = set()
        for message in todo:
            self.recorder.replaying = True
            trouble = self.recorder.trouble
            before = dataclasses.replace(trouble, trials=set(trouble.trials))
            self.recorder.handle(_with_copied_folder(message))
            if (trouble.failed, trouble.skipped) != (before.failed, before.skipped) and not self._reachable():
                self.recorder.trouble = before
                return False
            if message[0] == "trial_start":
                opened.add(message[1])
            elif message[0] == "trial_end":
                opened.discard(message[1])
            self.adopted += 1
        for key in opened:  # its trial died with its worker: closed KILLED when Optuna fails it (Recorder)
            self.recorder.runs.pop(key, None)
        return True

    def close(self, patience: float = PATIENCE) -> int:
        """At the end: wait up to ``patience`` s for the held-back records to be written, adopt dead
        workers' spools, delete this one when all is written; returns how many records it keeps."""
        deadline = time.monotonic() + patience
        while self.pending and time.monotonic() < deadline:
            self.retry()
            time.sleep(0.2)
        if not self.pending and self.recorder.parent is not None and self._reachable():
            self.adopt()
        self.log.close()  # the flock goes with it: a later worker may adopt what is left
        self.done.close()
        kept = len(self.pending)
        if not kept:
            remove_spool(self.path)
            for folder in (self.folder, self.folder.parent):
                if folder.exists() and not any(folder.iterdir()):
                    folder.rmdir()
        else:
            _log.warning("tracking: %d records kept in %s: the next run.py started here sends them", kept, self.path)
        return kept


def _with_copied_folder(message: tuple) -> tuple:
    """``message`` with its trial folder copied (the recorder deletes the folder it is given); without
    the folder (a spool whose weights were lost), None: the run gets its config.yaml only."""
    if message[0] != "trial_end" or not message[-1]:
        return message
    if not os.path.isdir(message[-1]):
        return (*message[:-1], None)
    copy = tempfile.mkdtemp(prefix="nnsweep-run-")
    shutil.copytree(message[-1], copy, dirs_exist_ok=True)
    return (*message[:-1], copy)


def read_records(handle) -> list[tuple]:
    """The records of a spool file, in order (a last one cut short by a kill is left out)."""
    records = []
    while True:
        try:
            records.append(pickle.load(handle))
        except (EOFError, pickle.UnpicklingError):
            return records


def done_count(path: Path) -> int:
    """How many of the spool's first records were written (or given up)."""
    done = path.with_suffix(".done")
    return done.stat().st_size if done.exists() else 0


def remove_spool(path: Path) -> None:
    """Delete a spool's three parts."""
    path.unlink(missing_ok=True)
    path.with_suffix(".done").unlink(missing_ok=True)
    shutil.rmtree(path.with_suffix(".files"), ignore_errors=True)
