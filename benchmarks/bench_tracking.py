"""What MLflow tracking costs: per trial, and on the default study's wall time.

What it measures:

1. **Per-trial overhead** (target ≤ 30 ms for a 50-epoch trial): the wall time of the tracker
   calls one trial makes — ``start_trial``, 50 × ``log_epoch``, ``end_trial`` with its artifacts
   (test metrics, initial and final weights) — against SQLite in a temp dir; the median of
   ``--trials`` synthetic trials replaying one real 50-epoch training on digits. This is what
   the trial waits for. The MLflow work itself runs in the tracking process on another core; its
   seconds per record come from the tracker's report and are printed too (``connect``: importing
   MLflow and opening or creating the SQLite store; ``trial_*``/``metrics``: per trial;
   ``study_end``: the summary, and logging the plots and trials.csv that a process forked from
   run.py drew meanwhile: ``experiments.plots.draw_study_files``).
2. **The default study** (target ≤ 1.10): ``python run.py`` (its ``sweep.n_trials``) from an empty temp dir
   as a subprocess, with tracking on (``sqlite:///mlflow.db``) and off (``tracking=none``),
   alternated ``--repeats`` times; the medians of wall time and of CPU time (the process tree's
   user + sys) and their ratios. Twice: as configured (2 workers: TPE and the pruner then depend
   on timing, so the two sides train different trials and the spread is wide), and with
   ``sweep.n_workers=1``, where both sides train the same trials (checked: the line says so).
   Each run's wall time is split at its first trial's start and its last trial's end (from the
   journal): start-up, trials, and what follows (the summary; with tracking, the study's plots).

3. **MLflow's floor**: the CPU that MLflow's SQLite store alone needs for the default study's
   records, in a fresh process: importing MLflow and opening a store (from the cached schema, as
   run.py does), then per trial only ``create_run``, one ``log_batch`` (its curves: five metrics per
   epoch, at the off studies' mean epochs per trial; 75 params; 6 tags) and ``set_terminated``: no
   artifacts, no plots. Added to the off study's CPU and spread over 2 cores with no idle moment,
   it gives the least wall time tracking could have, whatever the harness did around MLflow.

Run it (about 4 minutes on 2 cores)::

    python benchmarks/bench_tracking.py                 # all three parts
    python benchmarks/bench_tracking.py --skip-study    # part 1 only (seconds)
    python benchmarks/bench_tracking.py --repeats 3     # more study runs per side (default 2)

This is a script that prints figures, not a test: nothing here fails on a MISS.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRIAL_TARGET_MS = 30.0
STUDY_TARGET = 1.10
EPOCHS = 50


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def per_trial(n_trials: int) -> dict:
    """Median milliseconds of the tracker calls of one 50-epoch trial, and the tracking process's report."""
    import optuna
    from hydra import compose, initialize_config_dir

    from experiments.config import register_configs, split_seed
    from experiments.data import load_dataset
    from experiments.tracking import MlflowTracker
    from experiments.trainer import train_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    register_configs()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"train.epochs={EPOCHS}", "study_name=bench-tracking",
                                                           "model.hidden=[64]"])
        data = load_dataset(cfg.data, split_seed(cfg))
        result = train_config(cfg, data)  # one real training; every synthetic trial replays it
        study = optuna.create_study(study_name=cfg.study_name, storage=_journal(cfg.sweep.storage))
        tracker = MlflowTracker(cfg)
        start = time.perf_counter()
        tracker.start_study(study, cfg)
        startup = time.perf_counter() - start
        times = []
        for number in range(n_trials):
            start = time.perf_counter()
            tracker.start_trial(number, cfg, {"optimizer.lr": 1e-3})
            for metrics in result.history.epochs:
                tracker.log_epoch(metrics.as_dict(), metrics.epoch)
            tracker.end_trial("complete", result.final, result)
            times.append(time.perf_counter() - start)
        tracker.end_study(study)
        start = time.perf_counter()
        tracker.close()
        drain = time.perf_counter() - start
        report = tracker.report
        os.chdir(ROOT)
    return {"median_ms": 1e3 * statistics.median(times), "max_ms": 1e3 * max(times), "startup_ms": 1e3 * startup,
            "drain_s": drain, "report": report, "problems": tracker.problems()}


def _journal(path: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    return JournalStorage(JournalFileBackend(os.path.abspath(path)))


def study_run(tracking_on: bool, overrides: list[str]) -> tuple[float, float, int, tuple[float, float, float], int]:
    """Wall and CPU seconds of ``python run.py OVERRIDES`` from an empty temp dir, a hash of the
    trials it ran (numbers, states, sampled values), its wall time in three phases (before the
    first trial starts, first trial start to last trial end, after the last trial: summary, plots),
    and the epochs its trials trained."""
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, str(ROOT / "run.py"), *overrides] + ([] if tracking_on else ["tracking=none"])
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start, started = time.perf_counter(), time.time()
        proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True)
        seconds, ended = time.perf_counter() - start, time.time()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"run.py failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        if "warning: tracking" in proc.stderr:
            print("  " + proc.stderr.strip().splitlines()[-1])
        study = optuna.load_study(study_name="digits-default", storage=_journal(os.path.join(tmp, "optuna.journal")))
        trials = hash(tuple((t.number, t.state.name, tuple(sorted(t.params.items()))) for t in study.trials))
        first = min(t.datetime_start for t in study.trials).timestamp()
        last = max(t.datetime_complete for t in study.trials).timestamp()
        epochs = sum(len(t.intermediate_values) for t in study.trials)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, trials, (first - started, last - first, ended - last), epochs


def mlflow_floor(n_trials: int, epochs: int) -> float:
    """CPU seconds a fresh process takes to import MLflow, open a new SQLite store from the cached
    schema and log ``n_trials`` bare trials of ``epochs`` epochs each (see the module's 3.)."""
    proc = subprocess.run([sys.executable, __file__, "--floor", str(n_trials), str(epochs)], check=True,
                          capture_output=True, text=True)
    return float(proc.stdout.split()[-1])


def _floor_process(n_trials: int, epochs: int) -> None:
    """``--floor``: what :func:`mlflow_floor` measures, in this process; prints the CPU seconds. The store is
    opened as the tracking process opens it (``Recorder.client``); then only MLflow's own calls."""
    from experiments.tracking import Recorder, Settings

    start = time.process_time()  # (the harness, with Optuna, is imported already: so it is in run.py)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        recorder = Recorder(Settings(uri, uri, "floor", log_plots=False))
        client, experiment = recorder.client(), recorder.experiment_id("floor")
        from mlflow.entities import Metric, Param, RunTag

        for number in range(n_trials):
            run = client.create_run(experiment, tags={"mlflow.runName": f"trial-{number:04d}"})
            now = int(time.time() * 1000)
            curves = [Metric(k, 1.0 / e, now, e) for e in range(1, epochs + 1)
                      for k in ("train_cost", "val_cost", "train_accuracy", "val_accuracy", "time")]
            client.log_batch(run.info.run_id, metrics=curves, params=[Param(f"p{i}", str(i)) for i in range(75)],
                             tags=[RunTag(f"t{i}", "x") for i in range(6)])
            client.set_terminated(run.info.run_id, "FINISHED")
        print(time.process_time() - start)


def _phases(phases: tuple[float, float, float]) -> str:
    return " / ".join(f"{p:.1f}" for p in phases) + " s"


def compare(label: str, overrides: list[str], repeats: int) -> tuple[float, float, float]:
    """Alternate off/on runs; print each, the medians and the ratios. Returns the off side's medians:
    wall seconds, CPU seconds, epochs."""
    print(f"\n2. {label}, {repeats} runs per side, alternated")
    on, off, same = [], [], []
    for i in range(repeats):
        off.append(study_run(False, overrides))
        on.append(study_run(True, overrides))
        same.append(off[-1][2] == on[-1][2])
        print(f"   run {i + 1}: tracking off {off[-1][0]:.1f} s ({off[-1][1]:.1f} s CPU, {off[-1][4]} epochs), "
              f"on {on[-1][0]:.1f} s ({on[-1][1]:.1f} s CPU, {on[-1][4]} epochs); "
              f"same trials: {'yes' if same[-1] else 'no'}")
        print("          before the first trial / trials / after the last: off " + _phases(off[-1][3])
              + ", on " + _phases(on[-1][3]))
    wall = statistics.median(r[0] for r in on) / statistics.median(r[0] for r in off)
    cpu = statistics.median(r[1] for r in on) / statistics.median(r[1] for r in off)
    print(f"   median: off {statistics.median(r[0] for r in off):.1f} s, on {statistics.median(r[0] for r in on):.1f} s"
          f", wall ratio {wall:.3f}   target <= {STUDY_TARGET:.2f}   {verdict(wall <= STUDY_TARGET)}"
          f";   CPU ratio {cpu:.3f}")
    return (statistics.median(r[0] for r in off), statistics.median(r[1] for r in off),
            statistics.median(r[4] for r in off))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="synthetic trials for the per-trial figure")
    parser.add_argument("--repeats", type=int, default=2, help="default-study runs per side (on, off)")
    parser.add_argument("--skip-study", action="store_true", help="only the per-trial figure")
    parser.add_argument("--floor", type=int, nargs=2, metavar=("TRIALS", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        return _floor_process(*args.floor)

    print(f"1. per-trial tracking overhead: {args.trials} synthetic {EPOCHS}-epoch trials, SQLite in a temp dir")
    r = per_trial(args.trials)
    print(f"   the trial waits   : median {r['median_ms']:.2f} ms per trial (max {r['max_ms']:.2f} ms)   "
          f"target <= {TRIAL_TARGET_MS:.0f} ms   {verdict(r['median_ms'] <= TRIAL_TARGET_MS)}")
    print(f"   start_study       : {r['startup_ms']:.1f} ms (reachability check, fork of the tracking process)")
    report = r["report"]
    busy, cpu, count = report.get("busy", {}), report.get("cpu", {}), report.get("count", {})
    n = max(1, count.get("trial_end", 1))
    trial_kinds = ("trial_start", "metrics", "trial_end")
    print(f"   tracking process  : {1e3 * sum(busy.get(k, 0.0) for k in trial_kinds) / n:.1f} ms wall, "
          f"{1e3 * sum(cpu.get(k, 0.0) for k in trial_kinds) / n:.1f} ms CPU of MLflow work per trial, beside the "
          f"trials (create run + params {1e3 * cpu.get('trial_start', 0) / n:.1f} ms CPU; curves, final metrics, "
          f"artifacts, status {1e3 * cpu.get('trial_end', 0) / n:.1f} ms CPU)")
    print(f"                       once per study: connect {busy.get('connect', 0):.2f} s wall, "
          f"{cpu.get('connect', 0):.2f} s CPU (import MLflow, create the SQLite store); study_end "
          f"{busy.get('study_end', 0):.2f} s wall, {cpu.get('study_end', 0):.2f} s CPU in the process (summary, "
          f"logging the plots and trials.csv drawn by run.py's drawer)")
    print(f"                       close() waited {r['drain_s']:.2f} s for the backlog ({args.trials} trials sent at "
          f"once, no training in between)")
    if r["problems"]:
        print(f"   problems: {r['problems']}")
    if args.skip_study:
        return

    from bench_sweep import compose_config

    n_trials = compose_config([]).sweep.n_trials
    wall, cpu, epochs = compare(f"default study (python run.py: {n_trials} trials, 2 workers)", [], args.repeats)
    compare("default study, one worker (python run.py sweep.n_workers=1: the same trials on both sides)",
            ["sweep.n_workers=1"], args.repeats)
    per_trial_epochs = round(epochs / n_trials)
    floor = mlflow_floor(n_trials, per_trial_epochs)
    bound = (cpu + floor) / (2 * wall)
    print(f"\n3. MLflow's floor: importing MLflow, opening a store and {n_trials} bare trials of {per_trial_epochs} "
          f"epochs (no artifacts, no plots): {floor:.2f} s CPU.\n   On 2 cores with no idle moment, the default study "
          f"with that alone would take >= ({cpu:.1f} + {floor:.1f}) / 2 = {(cpu + floor) / 2:.1f} s against "
          f"{wall:.1f} s off: ratio >= {bound:.3f}")


if __name__ == "__main__":
    main()
