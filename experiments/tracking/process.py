"""The tracking process: forked from the launching process, it does every MLflow call of a run.py.

``Link`` forks it and is the pipe to it (``experiments.tracking.tracker.MlflowTracker`` sends one
message per record; the process writes each to its spool on disk, experiments.tracking.spool, and
hands it to a ``Recorder``, experiments.tracking.recorder).
The process imports MLflow and its SQL store (~2 s of CPU) while it waits for its first record, so
those seconds run beside the first trial. This module imports neither MLflow nor the recorder
until the process runs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading

from ..interrupts import sigint_deferred
from .quiet import quiet_mlflow
from .schema import Settings


class Link:
    """The tracking process and the pipe to it. Forked children of the owner may send too."""

    def __init__(self, settings: Settings):
        ctx = multiprocessing.get_context("fork")
        reader, self._writer = ctx.Pipe(duplex=False)
        self._report, report_writer = ctx.Pipe(duplex=False)
        self._lock = ctx.Lock()
        self.process = ctx.Process(target=_serve, args=(reader, self._writer, report_writer, settings),
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
def _serve(reader, writer, report, settings: Settings) -> None:
    """The tracking process: write each message to MLflow in order; report at the end. Idle before
    its first record, it imports what it will need."""
    writer.close()  # the sender's end: without this copy, the pipe ends when every sender is gone
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the trials; this process drains
    signal.signal(signal.SIGTERM, _exit_at_once)  # until the first record: nothing to close
    from .recorder import Recorder  # here: the launching process need not import MLflow's side
    from .spool import PATIENCE, Spool, spool_folder

    quiet_mlflow()
    store = Recorder(settings)
    inbox = Spool(store, spool_folder(settings.experiment))  # every record on disk until MLflow has it
    threading.Thread(target=_pump, args=(reader, inbox), daemon=True).start()  # the pipe never fills
    closed = False  # True: the owner asked to close; False: it died (or this process was terminated)
    try:
        while True:
            try:
                message = inbox.get(timeout=0.05)
            except queue.Empty:
                store.warm_up()  # idle before the first record: import MLflow (once)
                inbox.retry()  # records an outage of the server held back
                continue
            if message is None or message[0] == "close":
                closed = message is not None
                break
            if not store.count:  # the first record: from now on a SIGTERM ends the open runs first
                signal.signal(signal.SIGTERM, _exit_on_term)
            inbox.send(*message)
    finally:
        kept = inbox.close(PATIENCE if closed else 0.0)  # killed: what is left waits in the spool
        store.finish(closed)
        with contextlib.suppress(OSError):
            report.send({**store.trouble.report(), "busy": store.busy, "cpu": store.cpu, "count": store.count,
                         "train_run": store.train_run, "kept": kept, "spool": str(inbox.path),
                         "resent": inbox.resent, "adopted": inbox.adopted})


def _pump(reader, inbox) -> None:
    """Move messages from the pipe to ``inbox`` (the spool) as they come; None when the pipe ends (or breaks)."""
    while True:
        try:
            inbox.put(reader.recv())
        except Exception:  # EOF: every sender is gone; anything else: the stream cannot be trusted
            inbox.put(None)
            return


def _exit_on_term(signum, frame) -> None:
    raise SystemExit(143)


def _exit_at_once(signum, frame) -> None:
    """SIGTERM before any record (a process sent nothing is stopped so): leave now. An
    exception raised in the middle of an import could be printed as "ignored" on the user's terminal."""
    os._exit(143)
