"""The tracking process: forked from the launching process, it does every MLflow call of a run.py.

``Link`` forks it and is the pipe to it (``experiments.tracking.tracker.MlflowTracker`` sends one
message per record; the process hands each to a ``Recorder``, experiments.tracking.recorder).
The process starts by importing MLflow and its SQL store (~2 s of CPU) while it has nothing to
write, so ``prestart(cfg)`` lets run.py fork it before its own imports: those seconds then run
beside the launching process's start-up rather than beside the trials. This module imports
neither MLflow nor scikit-learn (nor the recorder, until the process runs): it is what run.py
loads before forking.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time

from ..interrupts import sigint_deferred
from .quiet import quiet_mlflow
from .schema import Settings, settings_of

PATIENCE = 3.0  # seconds the prestarted process waits for the composer before its own imports
_prestarted: Link | None = None


def prestart(cfg, after=None) -> None:
    """Fork the tracking process of ``cfg`` now (nothing when tracking is off); the first
    ``MlflowTracker`` with the same settings takes it (``take``). One left untaken ends at exit.

    ``after``: an event (``multiprocessing.Event``) the process waits for, at most ``PATIENCE``
    seconds, before its imports, unless a record comes first: the composer's (experiments.composition),
    so that the launching process does not share its core with two others while it starts up."""
    global _prestarted
    if cfg.tracking.enabled and _prestarted is None:
        _prestarted = Link(settings_of(cfg), after)
        atexit.register(_end_untaken)


def prestarted() -> Link | None:
    """The tracking process prestarted in this process and not taken yet; None without one."""
    return _prestarted


def take(settings: Settings) -> Link | None:
    """The prestarted tracking process when it was started with ``settings`` (once), else None."""
    global _prestarted
    link, _prestarted = _prestarted, None
    if link is None or link.owner != os.getpid():  # a forked worker: the launching process owns it
        return None
    if link.settings != settings:
        link.stop()
        return None
    return link


def _end_untaken() -> None:
    if _prestarted is not None and _prestarted.owner == os.getpid():
        _prestarted.stop()


class Link:
    """The tracking process and the pipe to it. Forked children of the owner may send too."""

    def __init__(self, settings: Settings, after=None):
        ctx = multiprocessing.get_context("fork")
        reader, self._writer = ctx.Pipe(duplex=False)
        self._report, report_writer = ctx.Pipe(duplex=False)
        self._lock = ctx.Lock()
        self.process = ctx.Process(target=_serve, args=(reader, self._writer, report_writer, settings, after),
                                   name="mlflow-tracking", daemon=True)
        self.process.start()
        reader.close()
        report_writer.close()
        self.owner = os.getpid()
        self.settings = settings

    def send(self, message: tuple) -> None:
        with sigint_deferred(), self._lock:
            self._writer.send(message)

    def close(self, timeout: float) -> dict:
        """Ask the process to finish, wait for its report of what failed, and reap it."""
        report: dict = {}
        try:
            self.send(("close",))
            if self._report.poll(timeout):
                report = self._report.recv()
            else:
                report = {"timeout": True}
        except (EOFError, OSError) as err:
            report = {"failed": 1, "first_error": f"the tracking process died ({type(err).__name__})"}
        finally:
            self._writer.close()
            self.process.join(5)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5)
        return report

    def stop(self) -> None:
        """End a process that was sent nothing (it has written nothing)."""
        self._writer.close()
        self.process.terminate()
        self.process.join(5)


# ---------------------------------------------------------------------------- the tracking process
def _serve(reader, writer, report, settings: Settings, after=None) -> None:
    """The tracking process: write each message to MLflow in order; report at the end. Idle, it
    imports what it will need, once ``after`` (see ``prestart``) is set or has been waited for long enough."""
    writer.close()  # the sender's end: without this copy, the pipe ends when every sender is gone
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the trials; this process drains
    signal.signal(signal.SIGTERM, _exit_at_once)  # until the first record: nothing to close
    from .recorder import Recorder  # here: the launching process need not import MLflow's side

    quiet_mlflow()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_pump, args=(reader, inbox), daemon=True).start()  # the pipe never fills
    store = Recorder(settings)
    closed = False  # True: the owner asked to close; False: it died (or this process was terminated)
    patience = time.monotonic() + PATIENCE
    try:
        while True:
            try:
                message = inbox.get(timeout=0.05)
            except queue.Empty:
                if after is None or after.is_set() or time.monotonic() > patience:
                    store.warm_up()  # idle (before the first record, when prestarted): import MLflow
                continue
            if message is None or message[0] == "close":
                closed = message is not None
                break
            if not store.count:  # the first record: from now on a SIGTERM ends the open runs first
                signal.signal(signal.SIGTERM, _exit_on_term)
            store.handle(message)
    finally:
        store.finish(closed)
        with contextlib.suppress(OSError):
            report.send({**store.trouble.report(), "busy": store.busy, "cpu": store.cpu, "count": store.count,
                         "train_run": store.train_run})


def _pump(reader, inbox: queue.SimpleQueue) -> None:
    """Move messages from the pipe to ``inbox`` as they come; None when the pipe ends (or breaks)."""
    while True:
        try:
            inbox.put(reader.recv())
        except Exception:  # EOF: every sender is gone; anything else: the stream cannot be trusted
            inbox.put(None)
            return


def _exit_on_term(signum, frame) -> None:
    raise SystemExit(143)


def _exit_at_once(signum, frame) -> None:
    """SIGTERM before any record (an untaken prestarted process is stopped so): leave now. An
    exception raised in the middle of an import could be printed as "ignored" on the user's terminal."""
    os._exit(143)
