"""Figures of the study harness: ``python run.py`` against an Optuna + scikit-learn peer, its
overhead over bare training, its scaling with workers, and what pruning saves.

What it runs (each study from scratch in its own temp dir, N trials, default N: the default study's
``sweep.n_trials``):

- peer      Optuna (TPE, seed 0) over scikit-learn's ``MLPClassifier`` on digits, in a subprocess
            like ours (interpreter start-up counted). Its space mirrors our default study's
            (``conf/sweep/default.yaml``): depth and width choices, ``learning_rate_init`` log
            1e-4..1, batch sizes, ``max_iter`` over our epochs range; plus solver adam/sgd,
            activation relu/tanh/logistic and log ``alpha`` 1e-6..1e-2. Same split as ours
            (``experiments.data.load_dataset`` of the digits config); objective: validation
            accuracy; each trial's final value logged by optuna-integration's ``MLflowCallback``
            to a sqlite MLflow store (skipped with a note when optuna-integration is missing).
            One process, BLAS capped at 1 thread.
- ours      ``python run.py`` (the default study: TPE seed 0, its pruner, ``sweep.n_workers``
            as configured, 1 BLAS thread per worker) with tracking on (default) and off
            (``tracking=none``). From the journal: the ``val_accuracy`` of the best trial (by the
            objective, val cost: the >= 97 % target) and the highest of a complete trial (against
            the peer's best).
- overhead  the default study with ``sweep.n_workers=1`` (tracking on, and off), run by ``run.py``
            in a subprocess in which each trial, right after it ends, is trained again bare: its
            config recomposed with ``experiments.composition.compose_trial`` and trained by
            ``experiments.trainer.train_config`` (a pruned one for the epochs it ran, a diverged one
            until it diverges). Ratio = the study's span (its first trial's start to its last trial's
            end) less the replays inside it / the replays' training time; the whole process's printed
            too. Trial and replay alternate every fraction of a second, so the machine's drift (its
            speed moves by 10-30% over a minute here) falls on both alike; replaying the whole study
            after it ran spread single ratios over 1.14-1.56 in one run. ``--overhead-runs`` studies
            per side (default 5); the median counts.
- workers   the same N configurations with 1 and 2 workers (``pruner.name=none``, tracking off):
            the grid sampler over a discrete copy of the default space (lr and dropout as
            choices), whose trial k is grid point k whatever the number of workers. Throughput:
            trials per second of the study's span (the whole commands' ratio is printed too).
- pruning   the default study (``sweep.n_workers`` as configured, tracking off), its pruner vs none:
            epochs spent (the journal's intermediate values, one per epoch run) and best val cost.
            TPE seed 0 (the default) runs ``--prune-repeats`` times a side (default 3; the tracking-off
            study above is the first pruned one; with 2 workers which trial ends first can vary, and
            with it what TPE and the pruner see) and its medians count. Then each TPE seed 1..K-1 of
            ``--prune-seeds`` once a side: pruning changes where TPE searches next, so one seed's gap is
            mostly the search's luck (the unpruned best alone varies ~20% by seed). Per seed, the
            pruned / unpruned ratios; their mean over the seeds, with a 95% bootstrap interval. Then
            each study's best trial is trained again for its test cost: the best val cost is a minimum
            picked over epochs and trials, which flatters the unpruned study (more complete trials to
            pick from) more; the test split shows what each study's pick is worth.

Run it (about 25 minutes on the 2-core development machine, half of it the pruning comparisons)::

    python benchmarks/bench_sweep.py               # the default study's trials, 3 seed-0 repeats, 25 seeds
    python benchmarks/bench_sweep.py --prune-seeds 1   # the pruning comparison on seed 0 only
    python benchmarks/bench_sweep.py --trials 8 --prune-repeats 1 --prune-seeds 0   # smoke run

This is a script that prints figures, not a test: nothing here fails on a MISS.
"""

import argparse
import json
import math
import os
import platform
import resource
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STUDY = "digits-default"
OFF = ["tracking=none"]
ONE = ["sweep.n_workers=1"]
DISCRETE = ['sweep.params={optimizer.lr: "choice(1e-3, 1e-2, 1e-1)", model.dropout: "choice(0.0, 0.15, 0.3)"}',
            "sweep.sampler.name=grid"]
NO_PRUNING = ["sweep.pruner.name=none"]


# ---------------------------------------------------------------------------- helpers
def compose_config(overrides: list[str]):
    """Our composed root config, validated (Hydra initialised on conf/ for the call)."""
    from hydra import compose, initialize_config_dir

    from experiments.config import register_configs, validate

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    validate(cfg)
    return cfg


def load_study(workdir: Path, name: str = STUDY):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(workdir / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def states():
    import optuna

    return optuna.trial.TrialState


def run_ours(workdir: Path, overrides: list[str], interleaved: bool = False) -> dict:
    """``python run.py OVERRIDES`` from ``workdir``: wall time and what the journal holds.

    ``interleaved``: each trial trained again bare right after it (``interleaved_main``, one worker);
    adds ``bare``/``bare_cpu`` (the replays' training), ``replays`` (their whole time within the
    study's span), ``replays_all``, ``replay_cpu`` and ``same`` (every complete replay ended on the
    recorded value)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(Path(__file__).resolve()), "--interleaved"] if interleaved else [str(ROOT / "run.py")]
    cpu0, load0 = children_cpu(), os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *command, *overrides], cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    cpu, load = children_cpu() - cpu0, max(load0, os.getloadavg()[0])
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} {' '.join(overrides)} exited {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    run = {**study_figures(workdir), "dir": workdir, "overrides": overrides, "wall": wall, "cpu": cpu, "load": load}
    if interleaved:
        replays = json.loads(proc.stdout.strip().splitlines()[-1])
        run.update(bare=replays["bare"], bare_cpu=replays["bare_cpu"], same=replays["same"],
                   replays=sum(replays["extras"][:-1]), replays_all=sum(replays["extras"]),
                   replay_cpu=replays["extra_cpu"])
    return run


def study_figures(workdir: Path) -> dict:
    """What the journal in ``workdir`` says of its study: trials, span, states, best values, epochs."""
    study = load_study(workdir)
    S = states()
    trials = study.trials
    complete = [t for t in trials if t.state == S.COMPLETE]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    return {
        "n": len(trials), "span": span, "parallel": busy / span,
        "complete": len(complete), "pruned": sum(t.state == S.PRUNED for t in trials),
        "failed": sum(t.state == S.FAIL for t in trials),
        "best_val_cost": study.best_value,
        "best_val_accuracy": max(t.user_attrs["val_accuracy"] for t in complete),
        "best_trial_val_accuracy": study.best_trial.user_attrs["val_accuracy"],
        "epochs": sum(len(t.intermediate_values) for t in trials),
    }


def best_test_cost(run: dict) -> float:
    """Test cost of the run's best trial, trained again bare from its composed config (a trial replays bit
    for bit; the sweep itself never looks at the test split)."""
    from threadpoolctl import threadpool_limits

    from experiments.config import split_seed
    from experiments.data import load_dataset
    from experiments.search_space import as_overrides
    from experiments.trainer import train_config

    cfg = compose_config(run["overrides"] + as_overrides(load_study(run["dir"]).best_trial.params))
    data = load_dataset(cfg.data, split_seed(cfg))
    with threadpool_limits(cfg.train.threads):
        result = train_config(cfg, data)
    return result.test_metrics(cfg, data)["test_cost"]


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_up(workdir: Path, overrides: list[str]) -> float:
    """Wall time of ``run.py`` on a study that is already full: start-up, open, summary; no trial."""
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=workdir, capture_output=True, check=True)
    return time.perf_counter() - start


def interleaved_main(overrides: list[str]) -> None:
    """``run.py OVERRIDES`` (one worker) in this process, from the current directory, each trial
    followed by its bare replay; prints one JSON line: the replays' training time, their whole time
    each, and whether they agree."""
    import optuna

    import experiments.sweep as sweep
    import nncore
    from experiments.composition import compose_trial
    from experiments.config import split_seed
    from experiments.data import load_dataset
    from experiments.trainer import train_config

    S = optuna.trial.TrialState
    run_trial = sweep.run_trial
    out = {"bare": 0.0, "bare_cpu": 0.0, "extras": [], "extra_cpu": 0.0, "same": True}

    def run_trial_then_bare(study, trial, plan, tracker):
        state = run_trial(study, trial, plan, tracker)
        start, cpu_start = time.perf_counter(), time.process_time()
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        if frozen.state in (S.COMPLETE, S.PRUNED, S.FAIL):
            cfg = compose_trial(plan, frozen.params)
            data = load_dataset(cfg.data, split_seed(cfg))
            ran = len(frozen.intermediate_values) if frozen.state == S.PRUNED else None
            bare, bare_cpu = time.perf_counter(), time.process_time()
            try:
                result = train_config(cfg, data, lambda metrics, kept: ran is not None and metrics.epoch >= ran)
            except nncore.DivergenceError:
                result = None
            out["bare"] += time.perf_counter() - bare
            out["bare_cpu"] += time.process_time() - bare_cpu
            if frozen.state == S.COMPLETE:
                out["same"] = out["same"] and result is not None and math.isclose(
                    result.final[plan.metrics[0]], frozen.value, rel_tol=1e-9)
        out["extras"].append(time.perf_counter() - start)
        out["extra_cpu"] += time.process_time() - cpu_start
        return state

    sweep.run_trial = run_trial_then_bare  # work() looks it up per trial
    sys.argv = [str(ROOT / "run.py"), *overrides]
    try:
        runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    print(json.dumps(out))


# ---------------------------------------------------------------------------- the peer
def peer_space():
    """The peer's search space, mirroring our default study's where scikit-learn has the knob."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from experiments.search_space import parse_search_space

    ours = parse_search_space(dict(compose_config([]).sweep.params))[0]
    return {
        "n_layers": ours["model.depth"],
        "width": ours["model.width"],
        "learning_rate_init": ours["optimizer.lr"],
        "batch_size": ours["train.batch_size"],
        "max_iter": ours["train.epochs"],
        "solver": CategoricalDistribution(["adam", "sgd"]),
        "activation": CategoricalDistribution(["relu", "tanh", "logistic"]),
        "alpha": FloatDistribution(1e-6, 1e-2, log=True),
    }, (IntDistribution, FloatDistribution, CategoricalDistribution)


def peer_main(n_trials: int, workdir: Path) -> None:
    """The peer study in this process (run as a subprocess by ``main``); prints one JSON line."""
    import numpy as np
    import optuna
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    from experiments.config import split_seed
    from experiments.data import load_dataset

    cfg = compose_config(["data=digits"])
    data = load_dataset(cfg.data, split_seed(cfg))
    space, (IntDistribution, FloatDistribution, _) = peer_space()

    def suggest(trial, name):
        d = space[name]
        if isinstance(d, IntDistribution):
            return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        if isinstance(d, FloatDistribution):
            return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_categorical(name, d.choices)

    def objective(trial):
        p = {name: suggest(trial, name) for name in space}
        clf = MLPClassifier(hidden_layer_sizes=(p["width"],) * p["n_layers"], activation=p["activation"],
                            solver=p["solver"], alpha=p["alpha"], batch_size=p["batch_size"],
                            learning_rate_init=p["learning_rate_init"], max_iter=p["max_iter"], random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            clf.fit(data.X_train, data.y_train)
        accuracy = float(np.mean(clf.predict(data.X_val) == data.y_val))
        if not math.isfinite(clf.loss_):
            raise ValueError("diverged")
        return accuracy

    callbacks, note = [], ""
    try:
        from optuna_integration.mlflow import MLflowCallback

        callbacks.append(MLflowCallback(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", metric_name="val_accuracy"))
    except ImportError as err:
        note = f"MLflow logging skipped: optuna-integration not importable ({err})"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    with threadpool_limits(1):
        study.optimize(objective, n_trials=n_trials, callbacks=callbacks, catch=(ValueError, FloatingPointError))
    optimize = time.perf_counter() - start
    S = states()
    print(json.dumps({"best_val_accuracy": study.best_value, "optimize": optimize, "n": len(study.trials),
                      "failed": sum(t.state == S.FAIL for t in study.trials), "note": note,
                      "mlflow_runs": _count_mlflow_runs(workdir) if callbacks else 0}))


def _count_mlflow_runs(workdir: Path) -> int:
    import sqlite3

    with sqlite3.connect(workdir / "mlflow.db") as db:
        return int(db.execute("select count(*) from runs").fetchone()[0])


def run_peer(n_trials: int, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--peer", str(n_trials), str(workdir)],
                          cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"peer exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


# ---------------------------------------------------------------------------- report
def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def mean_interval(values: list[float]) -> tuple[float, float]:
    """95 % bootstrap interval (scipy, percentile method) of the mean of ``values``: how far a few dozen
    seeds, each a different search, pin the mean gap down."""
    from scipy.stats import bootstrap

    res = bootstrap((values,), statistics.mean, method="percentile", n_resamples=4000, random_state=0)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, help="trials per study (default: the default study's sweep.n_trials)")
    parser.add_argument("--prune-repeats", type=int, default=3, help="default studies (TPE seed 0) per side of "
                        "its pruning comparison (default 3; the medians count)")
    parser.add_argument("--prune-seeds", type=int, default=25, help="TPE seeds 0..K-1 of the pruning comparison "
                        "(default 25; seed 0 is the default's, the others run once a side)")
    parser.add_argument("--overhead-runs", type=int, default=5, help="interleaved studies (each trial replayed "
                        "bare right after it) per side of the overhead figure (default 5; the median counts)")
    parser.add_argument("--peer", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--interleaved", nargs="+", metavar="OVERRIDE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_main(int(args.peer[0]), Path(args.peer[1]))
        return
    if args.interleaved:
        interleaved_main(args.interleaved)
        return

    import mlflow
    import optuna
    import sklearn

    default = compose_config([]).sweep
    n = args.trials or default.n_trials
    base = [f"sweep.n_trials={n}"]
    default_workers = default.n_workers
    print(f"bench_sweep: {n} trials per study; {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"optuna {optuna.__version__}, scikit-learn {sklearn.__version__}, mlflow {mlflow.__version__}")
    print(f"default study: sweep.n_workers={default_workers}, 1 BLAS thread per worker\n")
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        tmp = Path(tmp)
        print("[1/11] peer: Optuna TPE + sklearn MLPClassifier ...", flush=True)
        peer = run_peer(n, tmp / "peer")
        print("[2/11] ours: python run.py (tracking on) ...", flush=True)
        on = run_ours(tmp / "on", base)
        print("[3/11] ours: python run.py tracking=none ...", flush=True)
        off = run_ours(tmp / "off", base + OFF)
        print("[4/11] ours: python run.py sweep.n_workers=1, tracking on and off ...", flush=True)
        one_on, one_off = run_ours(tmp / "one_on", base + ONE), run_ours(tmp / "one_off", base + ONE + OFF)
        print(f"[5/11] overhead: 1 worker, tracking on / off, each trial replayed bare right after it, "
              f"{args.overhead_runs} times ...", flush=True)
        overhead = {"on": [], "off": []}
        for i in range(args.overhead_runs):
            for side, extra in (("on", []), ("off", OFF)):
                overhead[side].append(run_ours(tmp / f"interleaved_{side}{i}", base + ONE + extra, interleaved=True))
        cpu0 = children_cpu()
        startup = start_up(tmp / "one_off", base + ONE + OFF)
        startup_cpu = children_cpu() - cpu0
        print("[6/11] workers: 1 worker ...", flush=True)
        w1 = run_ours(tmp / "w1", base + ONE + OFF + NO_PRUNING + DISCRETE)
        print("[7/11] workers: 2 workers ...", flush=True)
        w2 = run_ours(tmp / "w2", base + ["sweep.n_workers=2"] + OFF + NO_PRUNING + DISCRETE)
        print(f"[8/11] pruning, the default study (TPE seed 0): pruner none and its pruner, {args.prune_repeats} "
              f"times each (the first pruned one is the tracking-off study above) ...", flush=True)
        default_pruned, default_none = [off], []
        for i in range(args.prune_repeats):
            default_none.append(run_ours(tmp / f"default_none{i}", base + OFF + NO_PRUNING))
            if i:
                default_pruned.append(run_ours(tmp / f"default_pruned{i}", base + OFF))
        print(f"[9/11] pruning, the default study with TPE seeds 1..{args.prune_seeds - 1}: its pruner and none, "
              f"once each ...", flush=True)
        pruning = []
        for seed in range(1, args.prune_seeds):
            seeded = [f"sweep.sampler.seed={seed}"]
            pruning.append((seed, run_ours(tmp / f"pruned{seed}", base + OFF + seeded),
                            run_ours(tmp / f"none{seed}", base + OFF + NO_PRUNING + seeded)))
        print("[10/11] pruning: each of those studies' best trial, trained again for its test cost ...", flush=True)
        for run in default_pruned + default_none + [run for _, *pair in pruning for run in pair]:
            run["test_cost"] = best_test_cost(run)
        print("[11/11] done\n", flush=True)
        same_configs = ([t.params for t in load_study(w1["dir"]).trials]
                        == [t.params for t in load_study(w2["dir"]).trials])

    def row(name, r):
        return (f"  {name:<30} {r['wall']:6.1f} s {r['cpu']:6.1f} s {r['load']:5.1f}  {r['best_val_accuracy']:.4f}  "
                f"{r['best_val_cost']:.4f}  {r['complete']:>3} {r['pruned']:>3} {r['failed']:>3} {r['epochs']:>6}")

    print("Studies: wall time and CPU time of the whole process tree (start-up included); load: the machine's")
    print("1-minute load average (> cores: other processes compete); best val accuracy, best val cost;")
    print("trials complete, pruned, failed; epochs run")
    print(f"  {'':<30} {'wall':>8} {'cpu':>8} {'load':>5}  {'acc':<6}  {'cost':<6}  {'ok':>3} {'prn':>3} {'bad':>3} "
          f"{'epochs':>6}")
    print(f"  {'peer: Optuna + sklearn':<30} {peer['wall']:6.1f} s {'':>8} {'':>5}  {peer['best_val_accuracy']:.4f}  "
          f"{'':<6}  {peer['n'] - peer['failed']:>3} {0:>3} {peer['failed']:>3}")
    print(row(f"ours, tracking on, {default_workers} workers", on))
    print(row(f"ours, tracking=none, {default_workers} workers", off))
    print(row("ours, tracking on, 1 worker", one_on))
    print(row("ours, tracking=none, 1 worker", one_off))
    print(row("grid, pruner none, 1 worker", w1))
    print(row("grid, pruner none, 2 workers", w2))
    print(f"  peer: optimize() alone {peer['optimize']:.1f} s; {peer['mlflow_runs']} MLflow runs logged")
    if peer["note"]:
        print(f"  note: {peer['note']}")
    print(f"  ours' best val acc: the highest of a complete trial; that of the best-val-cost trial: "
          f"{on['best_trial_val_accuracy']:.4f} (tracking on), {off['best_trial_val_accuracy']:.4f} (off)")

    print("\nPeer / ours wall time (higher: ours faster; the peer is one process)")
    print(f"  tracking on:  {peer['wall'] / on['wall']:.2f}x ({default_workers} workers), "
          f"{peer['wall'] / one_on['wall']:.2f}x (1 worker)")
    print(f"  tracking off: {peer['wall'] / off['wall']:.2f}x ({default_workers} workers), "
          f"{peer['wall'] / one_off['wall']:.2f}x (1 worker)")

    print("\nHarness overhead (1 worker): the study's span (journal: first trial start to last trial end) less the")
    print("bare replays run inside it (each trial's, right after it) / the replays' train_config time; also the")
    print(f"whole process (start-up {startup:.1f} s: imports, open, summary) and its CPU time (start-up's "
          f"{startup_cpu:.1f} s taken out), replays taken out, over the same")
    ratios = {}
    for side in ("on", "off"):
        spans, walls, cpus = [], [], []
        for study in overhead[side]:
            bare = study["bare"]
            spans.append((study["span"] - study["replays"]) / bare)
            walls.append((study["wall"] - study["replays_all"]) / bare)
            cpus.append((study["cpu"] - study["replay_cpu"] - startup_cpu) / study["bare_cpu"])
            print(f"  tracking {side:<3}: study span {study['span']:.1f} s - replays {study['replays']:.1f} s / bare "
                  f"{bare:.1f} s = {spans[-1]:.3f}; whole process {walls[-1]:.3f}; CPU {cpus[-1]:.3f}; "
                  f"replays end on the recorded values: {study['same']}")
        ratios[side] = statistics.median(spans)
        print(f"  tracking {side:<3}: median {ratios[side]:.3f} (whole process {statistics.median(walls):.3f}, "
              f"CPU {statistics.median(cpus):.3f})")
    ov_on, ov_off = ratios["on"], ratios["off"]

    tps1, tps2 = w1["n"] / w1["span"], w2["n"] / w2["span"]
    print("\nThroughput (grid sampler: the same configurations in both; pruner none, tracking off): trials per")
    print("second of the study (first trial start to last trial end; start-up and summary are paid once a command)")
    print(f"  1 worker: {tps1:.3f} trials/s; 2 workers: {tps2:.3f} trials/s; ratio {tps2 / tps1:.2f}x; "
          f"same configurations: {same_configs}")
    print(f"  whole commands: {w1['wall']:.1f} s / {w2['wall']:.1f} s = {w1['wall'] / w2['wall']:.2f}x (with the "
          f"start-up, {startup:.1f} s for a run.py with nothing to train)")
    print(f"  2 workers: trials overlapped {w2['parallel']:.2f}x (sum of trial durations / study span); "
          f"process tree used {w2['cpu'] / w2['wall']:.2f} cores (1 worker: {w1['cpu'] / w1['wall']:.2f})")

    from experiments.sweep import pruning_checks

    pruner = default.pruner
    if pruner.name in ("successive_halving", "hyperband"):
        asked = pruning_checks(pruner)
        first = next(epoch for epoch in range(1, 10**6) if asked(epoch))
        pruner_name = f"{pruner.name}, first rung at epoch {first}, reduction factor {pruner.reduction_factor}"
    else:
        pruner_name = (f"{pruner.name}{f' {pruner.percentile:g}' if pruner.name == 'percentile' else ''}, "
                       f"{pruner.n_warmup_steps} warm-up epochs, checked every {pruner.interval_steps}")
    print(f"\nPruning, the default study ({default_workers} workers, tracking off): the default pruner ({pruner_name}) "
          f"vs none, same TPE seed. Seed 0 (the default) ran {len(default_none)} times a side; its medians count")
    for name, runs in (("pruned", default_pruned), ("none", default_none)):
        costs = ", ".join(f"{r['best_val_cost']:.4f}" for r in runs)
        print(f"  seed 0, {name:<6}  epochs {', '.join(str(r['epochs']) for r in runs)}; best val cost {costs}")
    pairs = [(0, *({key: statistics.median(r[key] for r in runs) for key in ("epochs", "best_val_cost", "test_cost")}
                   for runs in (default_pruned, default_none)))] + pruning
    print("  both: both targets met (<= 60% of the epochs, best val cost at most 2% worse); test cost: the best "
          "trial's, on the held-out test split")
    print(f"  {'seed':>4}  {'epochs pruned / none':>21}  {'share':>6}  {'best val cost pruned / none':>28}  "
          f"{'gap':>6}  {'both':>4}  {'test cost pruned / none':>24}  {'gap':>6}")
    shares, gaps, test_gaps = [], [], []
    for seed, pruned, unpruned in pairs:
        shares.append(pruned["epochs"] / unpruned["epochs"])
        gaps.append(pruned["best_val_cost"] / unpruned["best_val_cost"] - 1)
        test_gaps.append(pruned["test_cost"] / unpruned["test_cost"] - 1)
        print(f"  {seed:>4}  {pruned['epochs']:>10g} / {unpruned['epochs']:<8g}  {shares[-1]:>6.1%}  "
              f"{pruned['best_val_cost']:>13.4f} / {unpruned['best_val_cost']:<12.4f}  {gaps[-1]:>+6.1%}  "
              f"{'yes' if shares[-1] <= 0.60 and gaps[-1] <= 0.02 else 'no':>4}  "
              f"{pruned['test_cost']:>11.4f} / {unpruned['test_cost']:<10.4f}  {test_gaps[-1]:>+6.1%}")
    met = sum(share <= 0.60 and gap <= 0.02 for share, gap in zip(shares, gaps))
    mean_share, mean_gap = statistics.mean(shares), statistics.mean(gaps)
    gap_interval = ""
    if len(gaps) > 1:
        low, high = mean_interval(gaps)
        gap_interval = f"{low:+.1%} to {high:+.1%}"
    interval = f" (95% bootstrap interval {gap_interval})" if gap_interval else ""
    print(f"  mean over {len(pairs)} seeds: {mean_share:.1%} of the epochs, best val cost {mean_gap:+.1%}{interval}, "
          f"median {statistics.median(gaps):+.1%}; {met} of {len(pairs)} seeds meet both targets")
    print(f"  the best trials' test cost (which the minimum val cost, picked over epochs and trials, does not "
          f"flatter): mean {statistics.mean(test_gaps):+.1%}, median {statistics.median(test_gaps):+.1%}")

    print("\nTargets (measured vs target)")
    best_trial = min(on["best_trial_val_accuracy"], off["best_trial_val_accuracy"])
    targets = [
        ("default study's best trial val acc >= 97%", f"{on['best_trial_val_accuracy']:.4f}, "
         f"{off['best_trial_val_accuracy']:.4f} (on, off)", best_trial >= 0.97),
        ("default study best val acc >= peer's", f"{on['best_val_accuracy']:.4f} vs {peer['best_val_accuracy']:.4f}",
         on["best_val_accuracy"] >= peer["best_val_accuracy"]),
        ("harness overhead, tracking on <= 1.15", f"{ov_on:.3f}", ov_on <= 1.15),
        ("harness overhead, tracking off <= 1.15", f"{ov_off:.3f}", ov_off <= 1.15),
        ("2 workers / 1 worker throughput >= 1.7x", f"{tps2 / tps1:.2f}x", tps2 / tps1 >= 1.7),
        ("default study: pruned epochs <= 60% of none", f"{shares[0]:.1%}", shares[0] <= 0.60),
        ("default study: pruned best val cost <= 2% worse", f"{gaps[0]:+.1%}", gaps[0] <= 0.02),
        (f"the same, mean over TPE seeds 0..{len(pairs) - 1}", f"{mean_share:.1%}, {mean_gap:+.1%}"
         f"{f' ({gap_interval})' if gap_interval else ''}", mean_share <= 0.60 and mean_gap <= 0.02),
    ]
    for name, measured, ok in targets:
        print(f"  {name:<48} {measured:<26} {verdict(ok)}")


if __name__ == "__main__":
    main()
