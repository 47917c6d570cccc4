"""The MNIST-1D study (``python run.py experiment=mnist1d``) against two peers run by hand the way a user
would: Optuna + PyTorch CPU MLPs, and Optuna + scikit-learn's ``MLPClassifier``.

What it runs (each study from scratch in its own temp dir, in a subprocess, interpreter start-up counted;
N trials, default N: ``experiment=mnist1d``'s ``sweep.n_trials``):

- torch     Optuna over the very search space of ``conf/experiment/mnist1d.yaml`` (parsed by
            ``experiments.search_space``): the same sampler (TPE, multivariate, the study's seed and
            ``n_startup_trials``), pruner (``experiments.sweep.make_pruner`` of the study's config) and
            objective; one trial = one plain PyTorch training loop of the same network (depth x width,
            activation, inverted dropout, He / Glorot initialisation, zero biases, softmax
            cross-entropy), the same ``torch.optim`` optimizer with our configs' hyperparameters
            (``conf/optimizer/*.yaml``), epochs and batch size, on the same split
            (``experiments.data.load_dataset``). Each epoch it evaluates the validation split, reports
            the objective to the pruner and asks it; ``train.restore_best`` and ``sweep.objective.window``
            are followed. One process,
            ``torch.set_num_threads(2)`` (our study: 2 worker processes of 1 thread; ``--torch-threads``).
- sklearn   the same, with ``MLPClassifier`` trained one epoch per ``partial_fit`` (so the pruner sees
            every epoch) over the subset of the space it can express: solver sgd/adam (momentum 0, as
            our sgd), activation relu/tanh/logistic (our sigmoid), ``alpha`` = weight decay x batch
            size (its L2 term is divided by the batch's size), no dropout. BLAS capped at 2 threads.
- ours      ``python run.py experiment=mnist1d`` (tracking on, the default): the journal's best trial;
            its test accuracy from the MLflow parent run (``best.test_accuracy``).

Each peer logs each trial's finals (the objective, val and test cost and accuracy) to its own sqlite MLflow
store through optuna-integration's ``MLflowCallback`` (``track_in_mlflow``); without optuna-integration the
logging is skipped with a note. The best trial of each study is the best by the objective (never by test);
its test accuracy is what the table compares.

Torch is not a dependency of this project; install the CPU build with ``pip install torch==2.13.0``
(``pip install -e ".[bench]"`` for optuna-integration).

Run it (about 55 minutes on the 2-core development machine with the full budget)::

    python benchmarks/bench_mnist1d.py                  # 60 trials a study (the study's sweep.n_trials)
    python benchmarks/bench_mnist1d.py --trials 12      # a reduced budget (every study alike)
    python benchmarks/bench_mnist1d.py --trials 4 --epochs 12   # smoke run: epochs capped too

This is a script that prints figures, not a test: nothing here fails on a MISS.
"""

import argparse
import collections
import copy
import functools
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import children_cpu, compose_config, load_study, states, verdict  # noqa: E402

STUDY = "mnist1d"
EXPERIMENT = ["experiment=mnist1d"]
TORCH_MISSING = "the PyTorch peer needs torch: pip install torch==2.13.0 (the CPU build)"
SKLEARN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}
TORCH_OPTIMIZERS = {"sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta",
                    "adam": "Adam", "adamax": "Adamax", "nadam": "NAdam"}


# ---------------------------------------------------------------------------- the study both peers run
def capped(epochs: int | None) -> list[str]:
    """The override that fixes every trial's epochs (the reduced budget), or none."""
    return [f"sweep.params={{train.epochs: {epochs}}}"] if epochs else []


def study_setup(overrides: list[str], epochs: int | None):
    """Our study's config, its search space (fixed values applied) and the split, as the peers use them."""
    from experiments.config import split_seed
    from experiments.data import load_dataset
    from experiments.search_space import parse_search_space

    cfg = compose_config(EXPERIMENT + overrides + capped(epochs))
    space, fixed = parse_search_space(dict(cfg.sweep.params))
    data = load_dataset(cfg.data, split_seed(cfg))
    return cfg, space, fixed, data


def make_study(cfg, space, fixed):
    """An in-memory Optuna study with our sampler's settings and our pruner."""
    import optuna

    from experiments.sweep import make_pruner

    s = cfg.sweep.sampler
    sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials, multivariate=True)
    pruner = make_pruner(SimpleNamespace(cfg=cfg, space=space, fixed=fixed))
    direction = list(cfg.sweep.objective.directions)[0]
    return optuna.create_study(study_name=STUDY, direction=direction, sampler=sampler, pruner=pruner)


def trial_values(trial, space, fixed) -> dict:
    """The trial's sampled values (``experiments.search_space.suggest``) and the fixed ones, by dotted key;
    a ``tag(relative, ...)`` factor times the chosen optimizer's configured value (``optimizer.lr``: its
    default), as ``experiments.sweep.trial_values`` does."""
    import yaml

    from experiments.search_space import scale_relative, suggest

    values = {**{key: yaml.safe_load(text) for key, text in fixed.items()}, **suggest(trial, space)}  # "90" -> 90
    configured = optimizer_values(values["optimizer"])
    return scale_relative(values, space, lambda key: configured.get(key.removeprefix("optimizer.")))


@functools.cache
def optimizer_values(name: str) -> dict:
    """Optimizer ``name``'s hyperparameters: its schema's defaults (made from nncore's) under what
    ``conf/optimizer/NAME.yaml`` sets (a Hydra compose each would cost seconds)."""
    from omegaconf import OmegaConf

    from experiments.config import OPTIMIZER_SCHEMAS

    own = OmegaConf.load(ROOT / "conf" / "optimizer" / f"{name}.yaml")
    own.pop("defaults", None)
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(OPTIMIZER_SCHEMAS[name]()), own))


def optimizer_settings(space: dict) -> dict[str, dict]:
    """Our optimizers' hyperparameters other than lr and weight decay (:func:`optimizer_values`)."""
    return {name: {k: v for k, v in optimizer_values(name).items() if k not in ("name", "lr", "weight_decay")}
            for name in space["optimizer"].choices}


def mlflow_callback(workdir: Path, metric: str):
    """optuna-integration's MLflowCallback on a sqlite store in ``workdir``, or (None, a note)."""
    try:
        from optuna_integration.mlflow import MLflowCallback
    except ImportError as err:
        return None, f"MLflow logging skipped: optuna-integration not importable ({err})"
    return MLflowCallback(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", metric_name=metric,
                          create_experiment=True), ""


def log_finals(callback, finals: dict) -> None:
    if callback is not None:
        import mlflow

        mlflow.log_metrics(finals)


def report_epoch(trial, callback, metric: str, epoch: int, last: int, metrics: dict, kept: dict | None,
                 restore_best: bool, recent: collections.deque) -> tuple[dict, bool]:
    """A peer's epoch as the harness treats one: ``metrics`` become the trial's result when they are
    its best so far (``restore_best``: lowest val_cost; else always), the objective (the mean of the result's
    ``metric`` over the last epochs, ``recent``: a deque of ``sweep.objective.window``) is reported to the
    pruner, and before the ``last`` epoch a prune logs the result and raises ``TrialPruned``.
    Returns (the result, whether this epoch's weights must be kept)."""
    import optuna

    better = kept is None or not restore_best or metrics["val_cost"] < kept["val_cost"]
    kept = metrics if better else kept
    recent.append(kept[metric])
    trial.report(sum(recent) / len(recent), epoch)
    if epoch < last and trial.should_prune():
        log_finals(callback, kept)
        raise optuna.TrialPruned(f"pruned at epoch {epoch}")
    return kept, better and restore_best


def trial_result(trial, callback, kept: dict, test: dict, recent: collections.deque) -> float:
    """The trial's finals (its result and the ``test`` metrics) as user attrs and in MLflow; its objective."""
    finals = {**kept, **test}
    for key, value in finals.items():
        trial.set_user_attr(key, value)
    log_finals(callback, finals)
    return sum(recent) / len(recent)


def count_mlflow_runs(workdir: Path) -> int:
    path = workdir / "mlflow.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("select count(*) from runs").fetchone()[0])


def finish(study, workdir: Path, callback, note: str, optimize: float) -> None:
    """Print the peer's figures as one JSON line."""
    S = states()
    complete = [t for t in study.trials if t.state == S.COMPLETE]
    best = study.best_trial if complete else None
    print(json.dumps({
        "optimize": optimize, "n": len(study.trials), "complete": len(complete),
        "pruned": sum(t.state == S.PRUNED for t in study.trials),
        "failed": sum(t.state == S.FAIL for t in study.trials),
        "epochs": sum(len(t.intermediate_values) for t in study.trials),
        "best_value": best.value if best else None,
        "best_val_accuracy": best.user_attrs.get("val_accuracy") if best else None,
        "best_test_accuracy": best.user_attrs.get("test_accuracy") if best else None,
        "best_params": best.params if best else None,
        "note": note, "mlflow_runs": count_mlflow_runs(workdir) if callback is not None else 0}))


# ---------------------------------------------------------------------------- the PyTorch peer
def torch_main(n_trials: int, workdir: Path, overrides: list[str], epochs: int | None, threads: int = 2) -> None:
    """The PyTorch peer's study in this process; prints one JSON line."""
    try:
        import torch
    except ImportError:
        sys.exit(TORCH_MISSING)
    import optuna
    from torch import nn

    torch.set_num_threads(threads)
    cfg, space, fixed, data = study_setup(overrides, epochs)
    metric = cfg.sweep.objective.metrics[0]
    restore_best, window = bool(cfg.train.restore_best), int(cfg.sweep.objective.window)
    extra = optimizer_settings(space)
    X = {split: torch.tensor(getattr(data, f"X_{split}"), dtype=torch.float32) for split in ("train", "val", "test")}
    y = {split: torch.tensor(getattr(data, f"y_{split}"), dtype=torch.long) for split in ("train", "val", "test")}
    activations = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}
    callback, note = mlflow_callback(workdir, metric)
    decorate = callback.track_in_mlflow() if callback is not None else (lambda f: f)

    def build(p):
        torch.manual_seed(int(cfg.train.seed))
        layers, n_in = [], X["train"].shape[1]
        for _ in range(p["model.depth"]):
            linear = nn.Linear(n_in, p["model.width"])
            if p["model.activation"] in ("relu", "leaky_relu"):
                nn.init.normal_(linear.weight, 0.0, math.sqrt(2.0 / n_in))  # he_normal
            else:
                nn.init.xavier_uniform_(linear.weight)  # glorot_uniform
            nn.init.zeros_(linear.bias)
            layers += [linear, activations[p["model.activation"]]()]
            if p["model.dropout"] > 0:
                layers.append(nn.Dropout(p["model.dropout"]))
            n_in = p["model.width"]
        out = nn.Linear(n_in, data.n_classes)
        nn.init.xavier_uniform_(out.weight)
        nn.init.zeros_(out.bias)
        return nn.Sequential(*layers, out)

    def evaluate(model, split):
        model.eval()
        with torch.no_grad():
            logits = model(X[split])
            cost = nn.functional.cross_entropy(logits, y[split]).item()
            accuracy = (logits.argmax(1) == y[split]).float().mean().item()
        model.train()
        return {f"{split}_cost": cost, f"{split}_accuracy": accuracy}

    @decorate
    def objective(trial):
        p = trial_values(trial, space, fixed)
        model = build(p)
        name = p["optimizer"]
        settings = dict(extra[name], lr=p["optimizer.lr"], weight_decay=p.get("optimizer.weight_decay", 0.0))
        if "betas" in settings:
            settings["betas"] = tuple(settings["betas"])
        optimizer = getattr(torch.optim, TORCH_OPTIMIZERS[name])(model.parameters(), **settings)
        generator = torch.Generator().manual_seed(int(cfg.train.seed))
        n, batch = len(y["train"]), p["train.batch_size"]
        kept, kept_state, recent = None, None, collections.deque(maxlen=window)
        for epoch in range(1, p["train.epochs"] + 1):
            total = 0.0
            for index in torch.randperm(n, generator=generator).split(batch):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(X["train"][index]), y["train"][index])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
            metrics = {"train_cost": total / n, **evaluate(model, "val")}
            if not all(math.isfinite(v) for v in metrics.values()):
                raise ValueError(f"training diverged at epoch {epoch}")
            kept, keep = report_epoch(trial, callback, metric, epoch, p["train.epochs"], metrics, kept, restore_best,
                                      recent)
            if keep:
                kept_state = copy.deepcopy(model.state_dict())
        if kept_state is not None:
            model.load_state_dict(kept_state)
        return trial_result(trial, callback, kept, evaluate(model, "test"), recent)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = make_study(cfg, space, fixed)
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, callbacks=[callback] if callback else [], catch=(ValueError,))
    finish(study, workdir, callback, note, time.perf_counter() - start)


# ---------------------------------------------------------------------------- the scikit-learn peer
def sklearn_space(space: dict) -> dict:
    """The part of our space ``MLPClassifier`` can express: sgd/adam, relu/tanh/sigmoid, no dropout."""
    from optuna.distributions import CategoricalDistribution

    space = dict(space)
    space.pop("model.dropout", None)
    space["optimizer"] = CategoricalDistribution([o for o in space["optimizer"].choices if o in ("sgd", "adam")])
    space["model.activation"] = CategoricalDistribution(
        [a for a in space["model.activation"].choices if a in SKLEARN_ACTIVATIONS])
    return space


def sklearn_main(n_trials: int, workdir: Path, overrides: list[str], epochs: int | None) -> None:
    """The scikit-learn peer's study in this process; prints one JSON line."""
    import numpy as np
    import optuna
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    cfg, space, fixed, data = study_setup(overrides, epochs)
    space = sklearn_space(space)
    metric = cfg.sweep.objective.metrics[0]
    restore_best, window = bool(cfg.train.restore_best), int(cfg.sweep.objective.window)
    classes = np.arange(data.n_classes)
    callback, note = mlflow_callback(workdir, metric)
    decorate = callback.track_in_mlflow() if callback is not None else (lambda f: f)

    def evaluate(clf, split):
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        proba = clf.predict_proba(X)
        return {f"{split}_cost": float(log_loss(y, proba, labels=classes)),
                f"{split}_accuracy": float(np.mean(classes[proba.argmax(1)] == y))}

    @decorate
    def objective(trial):
        p = trial_values(trial, space, fixed)
        clf = MLPClassifier(hidden_layer_sizes=(p["model.width"],) * p["model.depth"],
                            activation=SKLEARN_ACTIVATIONS[p["model.activation"]], solver=p["optimizer"],
                            alpha=p.get("optimizer.weight_decay", 0.0) * p["train.batch_size"],
                            batch_size=p["train.batch_size"], learning_rate_init=p["optimizer.lr"],
                            momentum=0.0, nesterovs_momentum=False, random_state=int(cfg.train.seed))
        kept, kept_weights, recent = None, None, collections.deque(maxlen=window)
        for epoch in range(1, p["train.epochs"] + 1):
            clf.partial_fit(data.X_train, data.y_train, classes=classes)  # one epoch of mini-batches
            if not math.isfinite(clf.loss_):
                raise ValueError(f"training diverged at epoch {epoch}")
            metrics = {"train_cost": float(clf.loss_), **evaluate(clf, "val")}
            kept, keep = report_epoch(trial, callback, metric, epoch, p["train.epochs"], metrics, kept, restore_best,
                                      recent)
            if keep:
                kept_weights = copy.deepcopy((clf.coefs_, clf.intercepts_))
        if kept_weights is not None:
            clf.coefs_, clf.intercepts_ = kept_weights
        return trial_result(trial, callback, kept, evaluate(clf, "test"), recent)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = make_study(cfg, space, fixed)
    start = time.perf_counter()
    with threadpool_limits(2), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        study.optimize(objective, n_trials=n_trials, callbacks=[callback] if callback else [],
                       catch=(ValueError, FloatingPointError))
    finish(study, workdir, callback, note, time.perf_counter() - start)


def run_peer(which: str, n_trials: int, workdir: Path, overrides: list[str], epochs: int | None,
             threads: int = 2) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), f"--{which}", str(n_trials), str(workdir),
               "--epochs", str(epochs or 0), "--torch-threads", str(threads), *overrides]
    cpu0, load0 = children_cpu(), os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{which} peer exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(wall=wall, cpu=children_cpu() - cpu0, load=max(load0, os.getloadavg()[0]))
    return result


# ---------------------------------------------------------------------------- ours
def run_ours(workdir: Path, n_trials: int, overrides: list[str], epochs: int | None) -> dict:
    """``python run.py experiment=mnist1d`` from a fresh ``workdir``: wall time, the journal's best trial,
    its test accuracy from the MLflow parent run."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(ROOT / "run.py"), *EXPERIMENT, f"sweep.n_trials={n_trials}", *overrides,
               *capped(epochs)]
    cpu0, load0 = children_cpu(), os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    study = load_study(workdir, STUDY)
    S = states()
    best = study.best_trial
    with sqlite3.connect(workdir / "mlflow.db") as db:
        row = db.execute("select value from latest_metrics where key = 'best.test_accuracy'").fetchone()
    return {"wall": wall, "cpu": children_cpu() - cpu0, "load": max(load0, os.getloadavg()[0]),
            "n": len(study.trials), "complete": sum(t.state == S.COMPLETE for t in study.trials),
            "pruned": sum(t.state == S.PRUNED for t in study.trials),
            "failed": sum(t.state == S.FAIL for t in study.trials),
            "epochs": sum(len(t.intermediate_values) for t in study.trials),
            "best_value": best.value, "best_val_accuracy": best.user_attrs.get("val_accuracy"),
            "best_test_accuracy": row[0] if row else None, "best_params": best.params, "note": ""}


# ---------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, help="trials per study (default: experiment=mnist1d's sweep.n_trials)")
    parser.add_argument("--epochs", type=int, default=0, help="cap every trial at this many epochs (a reduced "
                        "budget; default 0: the study's own)")
    parser.add_argument("--torch-threads", type=int, default=2, help="torch.set_num_threads of the PyTorch peer "
                        "(default 2, the machine's cores; on a loaded machine 2 OpenMP threads wait on each other "
                        "at every op: try 1)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("ours", "torch", "sklearn"),
                        help="studies not to run")
    parser.add_argument("--torch", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--sklearn", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()  # the rest: overrides for every study (e.g. sweep.sampler.seed=1)
    epochs = args.epochs or None
    if args.torch:
        torch_main(int(args.torch[0]), Path(args.torch[1]), overrides, epochs, args.torch_threads)
        return
    if args.sklearn:
        sklearn_main(int(args.sklearn[0]), Path(args.sklearn[1]), overrides, epochs)
        return

    import mlflow
    import optuna
    import sklearn

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    cfg = compose_config(EXPERIMENT + overrides)
    n = args.trials or cfg.sweep.n_trials
    budget = f"{n} trials a study" + (f", every trial capped at {epochs} epochs" if epochs else "")
    print(f"bench_mnist1d: {budget}; {os.cpu_count()} cores; Python {platform.python_version()}, optuna "
          f"{optuna.__version__}, torch {torch_version or 'missing'}, scikit-learn {sklearn.__version__}, "
          f"mlflow {mlflow.__version__}" + (f"; overrides {' '.join(overrides)}" if overrides else ""))
    if torch_version is None:
        print(f"note: {TORCH_MISSING}; its study is skipped")
        args.skip.append("torch")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench_mnist1d_") as tmp:
        tmp = Path(tmp)
        todo = [name for name in ("ours", "torch", "sklearn") if name not in args.skip]
        for i, name in enumerate(todo, 1):
            print(f"[{i}/{len(todo)}] {name} ...", flush=True)
            if name == "ours":
                runs[name] = run_ours(tmp / name, n, overrides, epochs)
            else:
                runs[name] = run_peer(name, n, tmp / name, overrides, epochs, args.torch_threads)

    metric = cfg.sweep.objective.metrics[0]
    labels = {"ours": "ours: python run.py", "torch": f"Optuna + PyTorch ({args.torch_threads} thr)",
              "sklearn": "Optuna + sklearn"}
    print("\nStudies: wall time and CPU time of the whole process (start-up included); load: the machine's 1-minute")
    print(f"load average (> cores: other processes compete); the best trial by {metric} (never test): its val")
    print("and test accuracy; trials complete, pruned, failed; epochs run")
    print(f"  {'':<22} {'wall':>8} {'cpu':>8} {'load':>5}  {'val acc':>7}  {'test acc':>8}  {'ok':>3} {'prn':>3} "
          f"{'bad':>3} {'epochs':>6}")
    for name, r in runs.items():
        val = f"{r['best_val_accuracy']:.4f}" if r["best_val_accuracy"] is not None else "-"
        test = f"{r['best_test_accuracy']:.4f}" if r["best_test_accuracy"] is not None else "-"
        print(f"  {labels[name]:<22} {r['wall']:6.1f} s {r['cpu']:6.1f} s {r['load']:5.1f}  {val:>7}  {test:>8}  "
              f"{r['complete']:>3} {r['pruned']:>3} {r['failed']:>3} {r['epochs']:>6}")
    for name, r in runs.items():
        print(f"  {labels[name]}: best {r['best_params']}" + (f"; {r['mlflow_runs']} MLflow runs logged"
                                                              if "mlflow_runs" in r else ""))
        if r.get("note"):
            print(f"    note: {r['note']}")

    if "ours" in runs and "torch" in runs:
        ours, peer = runs["ours"], runs["torch"]
        speed = peer["wall"] / ours["wall"]
        gap = (ours["best_test_accuracy"] or 0) - (peer["best_test_accuracy"] or 0)
        print("\nTargets (measured vs target)")
        print(f"  {'ours >= 2x faster than Optuna + PyTorch':<48} {speed:.2f}x{'':<20} {verdict(speed >= 2)}")
        print(f"  {'ours best test accuracy >= the PyTorch peer':<48} {gap:+.4f} ({ours['best_test_accuracy']:.4f} "
              f"vs {peer['best_test_accuracy']:.4f}) {verdict(gap >= 0)}")
        print("  (one study a side: a best trial's test accuracy moves by a few points with the search's seed)")


if __name__ == "__main__":
    main()
