"""Chaos on the distributed path: workers killed at random, a tracking server that restarts, dropped
database connections; then checks that nothing was lost, and the throughput against a calm study.

The script starts a PostgreSQL server and an ``mlflow server`` backed by it on 127.0.0.1
(tests/services.py), then runs the same study twice with ``--workers`` ``python run.py`` workers
(one launch dir and one process group each, as machines of their own; ``experiment=quick`` on
``--samples`` two-moons points, ``tracking.log_weights=true``):

- calm   no faults: its trials per minute are the reference;
- chaos  for ``--minutes`` (or until the study is done), every 2-6 s one fault, drawn at random:
         ``kill``   SIGKILL to a worker's process group, a new worker started in its slot;
         ``sigint`` SIGINT to a worker's process group (Ctrl-C), a new worker started in its slot;
         ``mlflow`` the ``mlflow server`` stopped, started again 5-15 s later on the same port;
         ``pg``     ``pg_terminate_backend`` of every connection of the workers to the study's database.
         A worker that should start while the server is down starts once it is back (run.py refuses
         an unreachable ``tracking.uri``, as a scheduler would retry). When the chaos stops, the
         workers still running finish the study. A launch dir that then still holds a dead
         worker's spool (its successors there were killed before they could send it) gets one more
         ``run.py``, which finds the study done and sends the spool, as a user would recover.

Then it checks the chaos study and prints each check: ``n_trials`` counted trials; no trial RUNNING
or WAITING; parameter sets unique except declared retries (among the trials that drew every
parameter: one killed before has none of its own); one parent run; one child run per trial
whose status mirrors it (COMPLETE: FINISHED; PRUNED: KILLED with ``pruned``; retried: KILLED with
``killed_reason``; interrupted: KILLED; failed: FAILED); each FINISHED run with one ``val_cost`` point per
epoch run and ``weights/final.npz`` that reproduces the trial's val_cost on its validation split;
no record left in a spool; no worker ended with an error the chaos does not explain (its stderr's
last lines, progress bars left out, are printed below the checks). Exit 1 when a check fails.

Run it (about 3 minutes on 2 cores)::

    python benchmarks/chaos.py                      # 3 minutes of chaos, 4 workers, 60 trials
    python benchmarks/chaos.py --minutes 1 --trials 24

A script that prints figures; tests/test_chaos.py runs a short one.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.services import MlflowServer, Postgres, as_from_a_terminal  # noqa: E402

FAULTS = ("kill", "sigint", "mlflow", "pg")
HEARTBEAT = "heartbeat_interval=2&grace_period=10&max_retry=5"  # a dead worker's trial is retried within ~12 s
FINISH_TIMEOUT = 900.0  # seconds the workers get to finish the study once the chaos stops
SHOWN_LINES = 30  # lines of an unexpectedly ended worker's stderr printed with the checks


@dataclass
class Worker:
    """One slot (a machine): its launch dir and the ``run.py`` running there now."""

    folder: Path
    proc: subprocess.Popen | None = None
    launches: int = 0
    exits: list = field(default_factory=list)  # (exit code, its stderr's lines but progress bars) of each run.py

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reap(self) -> None:
        """Record the exit of the run.py that ended (if it did)."""
        if self.proc is not None and self.proc.poll() is not None:
            err = (self.folder / f"run{self.launches}.err").read_text(errors="replace")
            self.exits.append((self.proc.returncode, said(err)))
            self.proc = None


PROGRESS_BAR = re.compile(r"\|\s*\d+/\d+ \[")  # tqdm's "| 45/48 [00:15<00:01, ...]"


def said(stderr: str) -> list[str]:
    """The lines of a worker's stderr but its progress bars (which tqdm redraws after ``\\r``)."""
    return [line for line in re.split(r"[\r\n]+", stderr) if line.strip() and not PROGRESS_BAR.search(line)]


def start(worker: Worker, command: list[str]) -> None:
    """``python run.py COMMAND`` in the worker's launch dir, in a process group of its own."""
    worker.launches += 1
    out = open(worker.folder / f"run{worker.launches}.out", "w")
    err = open(worker.folder / f"run{worker.launches}.err", "w")
    worker.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *command], cwd=worker.folder,
                                   stdout=out, stderr=err, start_new_session=True, preexec_fn=as_from_a_terminal)
    out.close()
    err.close()


def server_up(server: MlflowServer) -> bool:
    try:
        with urllib.request.urlopen(server.url + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def worker_command(name: str, storage: str, server: MlflowServer, args) -> list[str]:
    return ["experiment=quick", "tracking.log_plots=false", "tracking.log_weights=true", f"study_name={name}",
            f"sweep.storage='{storage}?{HEARTBEAT}'", f"tracking.uri={server.url}", f"sweep.n_trials={args.trials}",
            f"data.n_samples={args.samples}", f"train.batch_size={args.batch}", "sweep.max_failures=1000"]


def run_study(name: str, postgres: Postgres, server: MlflowServer, folder: Path, args, chaos: bool) -> dict:
    """Run study ``name`` with ``args.workers`` workers (and the chaos loop when ``chaos``); what happened."""
    storage = postgres.create_database(name.replace("-", "_"))
    command = worker_command(name, storage, server, args)
    workers = [Worker(folder / name / f"machine{i}") for i in range(args.workers)]
    begin = time.monotonic()
    try:
        return chaos_loop(workers, command, postgres, server, args, chaos, begin, name, storage)
    finally:
        for w in workers:
            if w.alive():
                os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait()


def chaos_loop(workers: list[Worker], command: list[str], postgres: Postgres, server: MlflowServer, args,
               chaos: bool, begin: float, name: str, storage: str) -> dict:
    """Start the workers; inject faults until ``args.minutes`` pass (``chaos``), restart the workers that
    end early, until every one has ended; what happened."""
    rng = random.Random(args.seed)
    faults: collections.Counter = collections.Counter()
    for w in workers:
        w.folder.mkdir(parents=True)
        start(w, command)
    deadline = begin + args.minutes * 60 if chaos else begin
    waiting: list[Worker] = []  # slots to start again once the server is back
    back_at = None  # when the stopped mlflow server starts again
    next_fault = begin + rng.uniform(2, 6)
    while any(w.proc is not None for w in workers) or waiting or back_at is not None:  # (None: reaped)
        time.sleep(0.2)
        now = time.monotonic()
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                code = w.proc.returncode
                w.reap()
                if code != 0 and w not in waiting:  # killed, interrupted or refused: the slot starts again
                    waiting.append(w)
        if back_at is not None and now >= back_at:
            server.start()
            server.wait()
            back_at = None
        if waiting and back_at is None and server_up(server):
            for w in waiting:
                start(w, command)
            waiting = []
        if now < deadline and now >= next_fault:
            next_fault = now + rng.uniform(2, 6)
            kind = rng.choice(FAULTS if back_at is None else ("kill", "sigint", "pg"))
            alive = [w for w in workers if w.alive()]
            if kind in ("kill", "sigint") and alive:
                victim = rng.choice(alive)
                os.killpg(victim.proc.pid, signal.SIGKILL if kind == "kill" else signal.SIGINT)
                if kind == "kill":
                    victim.proc.wait()
                faults[kind] += 1
            elif kind == "mlflow":
                server.stop()
                back_at = now + rng.uniform(5, 15)
                faults[kind] += 1
            elif kind == "pg":
                postgres.terminate_backends(name.replace("-", "_"))
                faults[kind] += 1
        if now - begin > args.minutes * 60 + FINISH_TIMEOUT:  # run_study kills those still running
            raise RuntimeError(f"study {name}: the workers did not finish within {FINISH_TIMEOUT:.0f} s of the chaos")
    held = [w for w in workers if held_spools(w)]
    for w in held:  # a dead worker's records wait in its launch dir: one more run.py there sends them
        start(w, command)
    for w in held:
        w.proc.wait(FINISH_TIMEOUT)
        w.reap()
    seconds = time.monotonic() - begin
    return {"storage": storage, "seconds": seconds, "faults": faults, "workers": workers, "resumed": len(held),
            "chaos_seconds": min(seconds, args.minutes * 60) if chaos else 0.0}


def held_spools(worker: Worker) -> list[Path]:
    """The tracking spools left in a worker's launch dir (experiments.tracking.spool): a dead worker's records."""
    return sorted(worker.folder.glob("outputs/tracking-spool/*/*.spool"))


def spool_events(workers: list[Worker]) -> tuple[int, int, int]:
    """(outages a worker's tracking process met, records it held back and sent after them, dead workers'
    spools sent by a successor), from the workers' logs (experiments.tracking.spool)."""
    outages = resent = adopted = 0
    for w in workers:
        for out in w.folder.glob("run*.out"):
            for line in out.read_text(errors="replace").splitlines():
                found = re.search(r"answers again: (\d+) records held back were sent", line)
                if found:
                    outages, resent = outages + 1, resent + int(found.group(1))
                adopted += "records of a dead worker's spool" in line
    return outages, resent, adopted


def expected_exit(code: int, lines: list[str]) -> bool:
    """An end the chaos explains: done (0), killed (-9), Ctrl-C (130; -2 before run.py handles it), or
    refused at start because the server was down then (2, ``cannot reach tracking.uri``)."""
    return code in (0, -9, 130, -signal.SIGINT) or (code == 2 and bool(lines) and
                                                     "cannot reach tracking.uri" in lines[-1])


# ---------------------------------------------------------------------------- the checks
class Checks:
    """Named checks, each passed or failed with what was found."""

    def __init__(self):
        self.rows: list[tuple[str, bool, str]] = []

    def add(self, name: str, ok: bool, found) -> None:
        self.rows.append((name, bool(ok), str(found)))

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.rows)


def check_study(study_name: str, storage: str, tracking_uri: str, n_trials: int) -> tuple[Checks, dict]:
    """Every check of the module's doc on study ``study_name``; (the checks, the counts printed)."""
    import numpy as np
    import optuna
    from mlflow.tracking import MlflowClient

    from analysis.loading import load_run
    from experiments.storage import open_storage
    from experiments.sweep import INTERRUPTED, counted, retried_numbers

    S = optuna.trial.TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=study_name, storage=open_storage(storage)).trials
    retried = retried_numbers(trials)
    checks = Checks()
    checks.add("counted trials == n_trials", counted(trials) == n_trials, f"{counted(trials)} of {n_trials}")
    numbers = [t.number for t in trials]
    checks.add("trial numbers unique", numbers == list(range(len(trials))), f"{len(trials)} trials")
    unfinished = [t.number for t in trials if t.state in (S.RUNNING, S.WAITING)]
    checks.add("no trial RUNNING or WAITING", not unfinished, unfinished or "none")
    by_params = collections.defaultdict(list)
    drawn = max((len(t.params) for t in trials), default=0)  # the space's keys (experiment=quick: all searched)
    for t in trials:
        if len(t.params) == drawn:  # not one killed before it drew them all: it ran no parameter set
            by_params[tuple(sorted(t.params.items()))].append(t)
    twice = [group for group in by_params.values() if len(group) > 1]  # each in trial number order
    undeclared = [[t.number for t in group] for group in twice  # each but the last retried, each but the first a retry
                  if not all(t.number in retried for t in group[:-1])
                  or not all(t.system_attrs.get("retry_history") for t in group[1:])]
    checks.add("parameter sets unique except declared retries", not undeclared,
               f"{len(twice)} sets run more than once, each a retry" if not undeclared else undeclared)

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study_name)
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    checks.add("one parent run", len(parents) == 1, f"{len(parents)} ({', '.join(r.info.status for r in parents)})")
    children = collections.defaultdict(list)
    for r in runs:
        if r not in parents:
            children[int(r.data.tags["optuna.trial_number"])].append(r)
    not_one = {n: len(children.get(n, [])) for n in numbers if len(children.get(n, [])) != 1}
    checks.add("one child run per trial", not not_one and len(children) == len(trials),
               not_one or f"{len(children)} runs for {len(trials)} trials")

    def mirrored(t, run) -> bool:
        status, tags = run.info.status, run.data.tags
        if t.state == S.COMPLETE:
            return status == "FINISHED"
        if t.state == S.PRUNED:
            return status == "KILLED" and tags.get("pruned") == "true"
        if t.number in retried:
            return status == "KILLED" and bool(tags.get("killed_reason"))
        if t.user_attrs.get("fail_reason") == INTERRUPTED:
            return status == "KILLED"
        return status == "FAILED" and bool(tags.get("fail_reason"))

    wrong = [f"#{t.number} {t.state.name}: {children[t.number][0].info.status}" for t in trials
             if len(children.get(t.number, [])) == 1 and not mirrored(t, children[t.number][0])]
    checks.add("every run's status mirrors its trial", not wrong, wrong or "all")

    broken_curves, bad_weights, worst = [], [], 0.0
    for t in trials:
        if t.state != S.COMPLETE or len(children.get(t.number, [])) != 1:
            continue
        run = children[t.number][0]
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_cost"))
        if steps != list(range(1, int(t.user_attrs["epochs_run"]) + 1)):
            broken_curves.append(f"#{t.number}: steps {steps}")
        try:
            value = load_run(run.info.run_id, tracking_uri, trial=t.number).evaluate("val")["val_cost"]
        except (OSError, KeyError) as err:
            bad_weights.append(f"#{t.number}: {err}")
            continue
        metrics = run.data.metrics  # the run's logged result: ``value`` (older runs: ``restored_val_cost``)
        logged = metrics.get("value", metrics.get("restored_val_cost", metrics.get("val_cost")))
        for target in (t.value, logged):
            worst = max(worst, abs(value - target) / max(abs(target), 1e-12))
            if not math.isclose(value, target, rel_tol=1e-9) or not np.isfinite(value):
                bad_weights.append(f"#{t.number}: {value} against {target}")
    complete = sum(t.state == S.COMPLETE for t in trials)
    checks.add("each FINISHED run: one val_cost point per epoch run", not broken_curves,
               broken_curves or f"{complete} runs")
    checks.add("each FINISHED run: weights reproduce val_cost (the trial's, the run's)", not bad_weights,
               bad_weights or f"{complete} runs, largest relative gap {worst:.1e}")

    lost = [t.number for t in trials if t.state in (S.RUNNING, S.WAITING) or len(children.get(t.number, [])) != 1
            or (t.state == S.FAIL and t.number not in retried and "fail_reason" not in t.user_attrs)]
    extra_runs = sum(len(g) - 1 for g in twice)
    checks.add("trials lost", not lost, lost or 0)
    checks.add("trials run twice (retries only)", not undeclared, f"{extra_runs} ({len(retried)} retries)")
    counts = {"trials": len(trials), "counted": counted(trials), "complete": complete,
              "pruned": sum(t.state == S.PRUNED for t in trials), "retried": len(retried),
              "interrupted": sum(t.user_attrs.get("fail_reason") == INTERRUPTED for t in trials),
              "failed": sum(t.state == S.FAIL and t.number not in retried
                            and t.user_attrs.get("fail_reason") != INTERRUPTED for t in trials),
              "lost": len(lost), "run twice": extra_runs}
    return checks, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the chaos lasts")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=60, help="sweep.n_trials of each study")
    parser.add_argument("--samples", type=int, default=8000, help="data.n_samples (two moons)")
    parser.add_argument("--batch", type=int, default=4, help="train.batch_size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chaos (which fault, when, whom)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (the workers' output)")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    print(f"# chaos: {args.workers} workers, {args.trials} trials (experiment=quick, {args.samples} samples, batch "
          f"{args.batch}), {args.minutes:g} min of chaos, seed {args.seed}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start; scratch {folder}", flush=True)
    postgres = Postgres().start()
    server = None
    try:
        backend = postgres.create_database("mlflow").replace("postgresql://", "postgresql+psycopg2://", 1)
        server = MlflowServer(backend, folder)
        server.wait()
        calm = run_study("chaos-calm", postgres, server, folder, args, chaos=False)
        print(f"calm: {args.trials} trials in {calm['seconds']:.0f} s", flush=True)
        soak = run_study("chaos-soak", postgres, server, folder, args, chaos=True)
        print(f"chaos: {args.trials} trials in {soak['seconds']:.0f} s ({soak['chaos_seconds']:.0f} s of chaos)",
              flush=True)
        checks, counts = check_study("chaos-soak", soak["storage"], server.url, args.trials)
        calm_checks, _ = check_study("chaos-calm", calm["storage"], server.url, args.trials)
    finally:
        if server is not None:
            server.stop()
        postgres.stop()
    faults = soak["faults"]
    exits = collections.Counter(code for w in soak["workers"] for code, _ in w.exits)
    unexpected = [(code, lines) for w in soak["workers"] for code, lines in w.exits if not expected_exit(code, lines)]
    checks.add("no worker ended with an unexpected error", not unexpected,
               [(code, lines[-1] if lines else "") for code, lines in unexpected] or "none")
    left = [str(p.relative_to(folder)) for w in soak["workers"] for p in held_spools(w)]
    checks.add("no record left in a spool", not left, left or "none")
    print(f"faults injected: {sum(faults.values())} ("
          + ", ".join(f"{k} {faults[k]}" for k in FAULTS) + ")")
    print("worker exits: " + ", ".join(f"{code}: {n}" for code, n in sorted(exits.items()))
          + f" ({sum(w.launches for w in soak['workers'])} launches)")
    print("trials: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    outages, resent, adopted = spool_events(soak["workers"])
    print(f"spool: {resent} records held back through {outages} outages met by the workers, then sent; "
          f"{adopted} dead workers' spools sent by the next worker in their launch dir ({soak['resumed']} of these "
          "workers started after the study was done, in the launch dirs that still held a spool)")
    calm_rate, soak_rate = args.trials / calm["seconds"] * 60, args.trials / soak["seconds"] * 60
    print(f"throughput: {soak_rate:.1f} trials/min under chaos, {calm_rate:.1f} calm: "
          f"{soak_rate / calm_rate:.2f}x")
    print("| check | ok | found |\n|---|---|---|")
    for name, ok, found in checks.rows:
        print(f"| {name} | {'yes' if ok else 'NO'} | {found} |")
    print(f"calm study checks: {'all pass' if calm_checks.ok else [r for r in calm_checks.rows if not r[1]]}")
    for code, lines in unexpected:  # what the log of a failed run then needs: the worker's own words
        print(f"a worker's stderr, exit {code} (its last {min(len(lines), SHOWN_LINES)} lines but progress bars):")
        print("\n".join("    " + line for line in lines[-SHOWN_LINES:]))
    if args.keep or not (checks.ok and calm_checks.ok):
        print(f"workers' output kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if checks.ok and calm_checks.ok else 1


if __name__ == "__main__":
    sys.exit(main())
