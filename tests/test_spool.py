"""The tracking process's spool (experiments/tracking/spool.py): records held back while the server is
away and sent again in order, a dead worker's spool sent by the next, nothing left behind.

A stand-in recorder plays the MLflow side: it writes nothing while ``up`` is False, as a stopped
``mlflow server`` (tests/test_chaos.py runs the real thing)."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments.tracking import TrackingError, spool
from experiments.tracking.breaker import Trouble
from experiments.tracking.spool import Spool


class StandIn:
    """What ``Spool`` uses of a ``Recorder``; ``written``: (record, replaying, files in its folder)."""

    def __init__(self):
        self.trouble, self.settings = Trouble(), SimpleNamespace(uri="http://127.0.0.1:9")
        self.parent, self.runs, self.replaying, self.up, self.written = None, {}, False, True, []

    def handle(self, message) -> None:
        if not self.up:
            self.trouble.failed += 1
            self.trouble.lost(message[1] if message[0] != "study" else "study")
            return
        folder = message[-1] if message[0] == "trial_end" else None
        self.written.append((message[:2], self.replaying, sorted(p.name for p in Path(folder).iterdir())
                             if folder else None))
        if message[0] == "study":
            self.parent = "parent-run"
        elif message[0] == "trial_start":
            self.runs[message[1]] = "run"
        elif message[0] == "trial_end":
            self.runs.pop(message[1], None)


@pytest.fixture
def servers(monkeypatch):
    """Stand-in recorders; ``check_reachable`` answers as the first one's ``up``."""
    made = []

    def reachable(uri):
        if not made[0].up:
            raise TrackingError("down")

    monkeypatch.setattr(spool, "check_reachable", reachable)
    monkeypatch.setattr(spool, "RETRY_EVERY", 0.0)
    return made


def deliver(box: Spool, *messages) -> None:
    """Each message through the spool as the tracking process does: put (the pipe's thread), get, send."""
    for message in messages:
        box.put(message)
        box.send(*box.get(1))


def weights(tmp_path: Path, name: str) -> str:
    folder = tmp_path / name
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "final.npz").write_bytes(b"npz")
    return str(folder)


def test_records_the_server_missed_are_sent_again_in_order_once_it_answers(tmp_path, servers):
    recorder = StandIn()
    servers.append(recorder)
    box = Spool(recorder, tmp_path / "spool")
    deliver(box, ("study", "s", "storage", {}))
    recorder.up = False  # the server stops
    folder = weights(tmp_path, "trial0")
    deliver(box, ("trial_start", 0, 0, {}, 1), ("metrics", 0, [(1, 0, {"val_cost": 0.5})]),
            ("trial_end", 0, "complete", "FINISHED", None, [], {}, 1, folder))
    assert [w[0] for w in recorder.written] == [("study", "s")] and len(box.pending) == 3
    assert recorder.trouble.failed == 0  # held back, not lost
    assert not Path(folder).exists() and list((box.files / "3").iterdir())  # the weights wait in the spool
    box.retry()
    assert len(box.pending) == 3  # still down
    recorder.up = True
    box.retry()
    assert [w[0] for w in recorder.written] == [("study", "s"), ("trial_start", 0), ("metrics", 0), ("trial_end", 0)]
    assert recorder.written[1][1] is True  # sent before: its run is looked up first
    assert recorder.written[3][2] == ["weights"] and box.resent == 3 and not box.pending
    assert box.close(0) == 0
    assert not (tmp_path / "spool").exists()  # nothing left behind


def test_a_dead_workers_spool_is_sent_by_the_next_worker_and_only_its_unwritten_trials(tmp_path, servers):
    dead = StandIn()
    servers.append(dead)
    first = Spool(dead, tmp_path / "spool")
    deliver(first, ("study", "s", "storage", {}), ("trial_start", 2, 2, {}, 1),
            ("trial_end", 2, "complete", "FINISHED", None, [], {}, 1, weights(tmp_path, "trial2")))
    dead.up = False
    deliver(first, ("trial_start", 1, 1, {}, 1), ("metrics", 1, [(1, 0, {"val_cost": 0.5})]))
    live = StandIn()
    second = Spool(live, tmp_path / "spool")
    deliver(second, ("study", "s", "storage", {}))
    assert [w[0] for w in live.written] == [("study", "s")]  # the first worker lives: its spool is its own
    first.log.close()  # kill -9: the flock is gone, the files stay
    first.done.close()
    dead.up = True
    second.adopt()
    assert [w[0] for w in live.written] == [("study", "s"), ("trial_start", 1), ("metrics", 1)]
    assert all(replaying for _, replaying, _ in live.written[1:]) and second.adopted == 2
    assert 1 not in live.runs  # its trial died with its worker: Optuna fails it, the recorder closes its run
    assert {p.name for p in (tmp_path / "spool").iterdir()} == {second.path.name, f"{second.path.stem}.done"}
    assert second.close(0) == 0 and not (tmp_path / "spool").exists()


def test_records_kept_at_the_end_stay_in_the_spool_for_the_next_worker(tmp_path, servers):
    recorder = StandIn()
    servers.append(recorder)
    box = Spool(recorder, tmp_path / "spool")
    deliver(box, ("study", "s", "storage", {}))
    recorder.up = False
    deliver(box, ("trial_start", 0, 0, {}, 1))
    assert box.close(0.3) == 1  # the server did not come back in time
    assert box.path.exists() and box.path.with_suffix(".done").stat().st_size == 1  # the study is written
