"""Seconds per training epoch of nncore against scikit-learn, PyTorch and a matmul floor.

What it measures: the wall time of ONE training epoch (shuffle, mini-batches, forward,
backward, Adam step), as the median of several epochs after one warm-up epoch, for

- ``nncore``        ``nncore.train_epoch`` with ``make_optimizer("adam")``;
- ``sklearn``       ``MLPClassifier(solver="adam").partial_fit`` (one epoch per call);
- ``pytorch``       ``nn.Sequential`` + ``torch.optim.Adam`` (skipped when torch is missing);
- ``floor``         only the 8 matrix products backprop needs per batch, on preallocated
                    float32 arrays with ``out=`` (a lower bound for any implementation doing them),

on two cases, both ReLU MLPs with softmax cross-entropy, Adam (lr 1e-3, PyTorch defaults),
float32, synthetic Gaussian inputs labelled by a random linear teacher (fixed seed):

- large: 784-256-128-10, batch 128, 60,000 samples (MNIST-sized);
- small: 64-32-10, batch 32, 1,797 samples (digits-sized).

It prints one table per case with the median seconds per epoch (and the min..max of the
timed epochs), the ratio of each implementation to nncore, and the performance targets as
measured vs target with PASS/MISS. All libraries run on the same THREADS cores: BLAS/OpenMP
pools are capped with threadpoolctl for the whole run and PyTorch gets
``torch.set_num_threads(THREADS)``. After the warm-up epochs the timed epochs go round-robin
over the implementations, so background load hits them alike; still, run it on an idle
machine: multi-threaded BLAS slows down many times over when another process holds a core
(the load average is printed at the top for that reason).

Run it (about a minute on an idle 2-core machine)::

    python benchmarks/bench_core.py                 # tables, 2 threads
    python benchmarks/bench_core.py --threads 1     # single core
    python benchmarks/bench_core.py --quick         # smoke run: large case on 6,000 samples
    python benchmarks/bench_core.py --json          # one JSON object instead of the tables
    python benchmarks/bench_core.py --epochs 3      # timed epochs per implementation and case

This is a script that prints figures, not a test: nothing here fails on a MISS.
"""

import argparse
import importlib
import json
import os
import re
import statistics
import sys
import time
import warnings
from itertools import pairwise
from pathlib import Path

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_info, threadpool_limits

try:  # optional: the project does not depend on torch
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
LR = 1e-3

CASES = {
    # name: (layer sizes, batch size, number of samples, default timed epochs)
    "large": ((784, 256, 128, 10), 128, 60_000, 5),
    "small": ((64, 32, 10), 32, 1_797, 30),
}
QUICK_LARGE_SAMPLES = 6_000

# (case, numerator, denominator, comparison, target): "numerator/denominator" is a ratio of
# seconds per epoch, so "pytorch/nncore >= 1.3" means nncore is at least 1.3x faster.
TARGETS = [
    ("large", "pytorch", "nncore", ">=", 1.3),
    ("large", "sklearn", "nncore", ">=", 2.0),
    ("large", "nncore", "floor", "<=", 1.6),
    ("small", "pytorch", "nncore", ">=", 5.0),
]
IMPLEMENTATIONS = ("nncore", "sklearn", "pytorch", "floor")


def load_nncore():
    """``nncore`` from the repository root, also when this script is run by its path."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("nncore")


def make_data(n_samples: int, n_in: int, n_classes: int, seed: int = SEED):
    """Gaussian inputs ``(n, n_in)`` float32 C-contiguous and labels ``(n,)`` int64 from a
    random linear teacher ``argmax(X T)``, so the task is learnable."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_in), dtype=np.float32)
    teacher = rng.standard_normal((n_in, n_classes), dtype=np.float32)
    y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    return np.ascontiguousarray(X), y


def nncore_epoch(nncore, sizes, batch, X, y):
    """One nncore training epoch as a callable."""
    net = nncore.Network(list(sizes), "relu", "softmax", dtype="float32", rng=SEED)
    opt = nncore.make_optimizer("adam", lr=LR)  # one thread; BLAS gets THREADS via threadpoolctl
    Y = nncore.encode_targets(net, y)  # one-hot float32, built once outside the timing
    rng = np.random.default_rng(SEED)

    def epoch():
        nncore.train_epoch(net, X, Y, opt, "cross_entropy", batch, rng)

    return epoch


def sklearn_epoch(sizes, batch, X, y):
    """One scikit-learn MLPClassifier epoch as a callable.

    partial_fit, not fit(warm_start=True, max_iter=1): in scikit-learn 1.9 a warm-started fit()
    builds a new AdamOptimizer on every call (moments and step count reset each epoch) and
    warns ConvergenceWarning, while partial_fit keeps the optimizer (incremental=True) and runs
    exactly one shuffled pass over all mini-batches. Both re-seed with
    check_random_state(random_state) on every call, so an int seed would replay the same
    permutation every epoch; a RandomState(0) instance draws a fresh one each time.
    """
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam", batch_size=batch,
        learning_rate_init=LR, max_iter=1, shuffle=True, random_state=np.random.RandomState(SEED),
        tol=0.0, n_iter_no_change=10**9, early_stopping=False, alpha=0.0,
    )
    classes = np.arange(sizes[-1])

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(X, y, classes=classes)

    return epoch


def pytorch_epoch(sizes, batch, X, y, threads):
    """One PyTorch epoch as a callable, or ``None`` when torch cannot be imported."""
    if torch is None:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    layers = []
    for n_in, n_out in pairwise(sizes):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])  # no ReLU after the output layer
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=LR)  # betas (0.9, 0.999), eps 1e-8, foreach
    X_t = torch.from_numpy(X)
    y_t = torch.from_numpy(y)
    n = X_t.shape[0]
    gen = torch.Generator().manual_seed(SEED)

    def epoch():
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, batch):
            idx = order[lo:lo + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X_t[idx]), y_t[idx])
            loss.backward()
            opt.step()

    return epoch


def floor_epoch(sizes, batch, n):
    """Only the matrix products of backprop over ceil(n / batch) batches (the last one
    smaller), as a callable, laid out as nncore does: ``W (out, in)``, ``Z = A Wᵀ``,
    ``dW = δᵀ A``, ``δ W``: per batch 3 forward, 3 weight-gradient and 2 delta products for
    two hidden layers. No gather, bias, activation, loss or optimizer work."""
    rng = np.random.default_rng(SEED)
    f32 = np.float32
    m = min(batch, n)
    n_layers = len(sizes) - 1
    W = [rng.standard_normal((o, i), dtype=f32) * f32(0.05) for i, o in pairwise(sizes)]
    dW = [np.empty_like(w) for w in W]
    A = [rng.standard_normal((m, sizes[0]), dtype=f32)] + [rng.standard_normal((m, o), dtype=f32) for o in sizes[1:]]
    D = [rng.standard_normal((m, o), dtype=f32) for o in sizes[1:]]

    def epoch():
        for lo in range(0, n, batch):
            k = min(batch, n - lo)
            for i in range(n_layers):
                np.matmul(A[i][:k], W[i].T, out=A[i + 1][:k])  # forward: Z = A Wᵀ
            for i in range(n_layers - 1, -1, -1):
                np.matmul(D[i][:k].T, A[i][:k], out=dW[i])  # weight gradient: δᵀ A
                if i:
                    np.matmul(D[i][:k], W[i], out=D[i - 1][:k])  # delta to the layer below: δ W

    return epoch


def run_case(nncore, name, n_samples, epochs, threads, log):
    """Median seconds per epoch ``{impl: s or None}`` and all epoch times ``{impl: [s, ...] or None}``.

    Every implementation runs one untimed warm-up epoch, then the timed epochs go round-robin
    (nncore, sklearn, pytorch, floor, nncore, ...), so a burst of load from another process
    hits all of them alike instead of one implementation's whole run.
    """
    sizes, batch, _, _ = CASES[name]
    X, y = make_data(n_samples, sizes[0], sizes[-1])
    log(f"[{name}] {'-'.join(map(str, sizes))}, batch {batch}, {n_samples:,} samples, "
        f"1 warm-up + {epochs} timed epochs each, round-robin")
    runners = {
        "nncore": nncore_epoch(nncore, sizes, batch, X, y),
        "sklearn": sklearn_epoch(sizes, batch, X, y),
        "pytorch": pytorch_epoch(sizes, batch, X, y, threads),
        "floor": floor_epoch(sizes, batch, n_samples),
    }
    runners = {impl: run for impl, run in runners.items() if run is not None}
    for run in runners.values():
        run()  # warm-up: first-call allocations, optimizer state, BLAS thread start-up
    times = {impl: [] for impl in runners}
    for k in range(epochs):
        for impl, run in runners.items():
            start = time.perf_counter()
            run()
            times[impl].append(time.perf_counter() - start)
        log(f"  epoch {k + 1}/{epochs}: " + ", ".join(f"{impl} {t[-1]:.4f}s" for impl, t in times.items()))
    result = {impl: statistics.median(times[impl]) if impl in times else None for impl in IMPLEMENTATIONS}
    return result, {impl: times.get(impl) for impl in IMPLEMENTATIONS}


def ratio_label(impl: str, seconds, nn_seconds: float) -> str:
    if seconds is None:
        return "skipped"
    if impl == "nncore":
        return "1.00x (reference)"
    if impl == "floor":
        return f"nncore/floor = {nn_seconds / seconds:.2f}x"
    return f"{impl}/nncore = {seconds / nn_seconds:.2f}x"


def print_table(name: str, result: dict, times: dict, n_samples: int) -> None:
    sizes, batch, _, _ = CASES[name]
    print(f"\n== {name}: {'-'.join(map(str, sizes))} ReLU, batch {batch}, {n_samples:,} x {sizes[0]} ==")
    print(f"{'implementation':<16}{'s/epoch':>10}  {'(min .. max)':<20}  ratio")
    for impl in IMPLEMENTATIONS:
        seconds = result[impl]
        shown = "-" if seconds is None else f"{seconds:.4f}"
        spread = "" if seconds is None else f"({min(times[impl]):.4f} .. {max(times[impl]):.4f})"
        print(f"{impl:<16}{shown:>10}  {spread:<20}  {ratio_label(impl, seconds, result['nncore'])}")
    print("targets:")
    for case, num, den, op, target in TARGETS:
        if case != name:
            continue
        if result[num] is None or result[den] is None:
            print(f"  {num}/{den} {op} {target}: SKIPPED ({'torch not importable' if torch is None else 'no data'})")
            continue
        measured = result[num] / result[den]
        ok = measured >= target if op == ">=" else measured <= target
        print(f"  {num}/{den} = {measured:.2f}x  (target {op} {target}x)  {'PASS' if ok else 'MISS'}")


def print_environment(threads: int) -> None:
    print(f"numpy {np.__version__}")
    print(f"scikit-learn {sklearn.__version__}")
    if torch is None:
        print("torch not installed (pytorch rows skipped)")
    else:  # torch links its own BLAS (MKL), invisible to threadpoolctl; set_num_threads caps it
        blas = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
        print(f"torch {torch.__version__} (BLAS {blas.group(1) if blas else '?'}, "
              f"{torch.get_num_threads()} intra-op threads)")
    for lib in threadpool_info():
        print(f"{lib['user_api']}: {lib['internal_api']} {lib.get('version')} "
              f"({lib.get('architecture', '-')}, {lib.get('threading_layer', '-')}), "
              f"num_threads={lib['num_threads']} prefix={lib['prefix']}")
    print(f"threads: {threads} (threadpoolctl limit + torch.set_num_threads)")
    print(f"load average before the run: {load_average()} on {os.cpu_count()} CPUs "
          "(other busy processes make multi-threaded BLAS, and so every figure here, much slower)")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # not on every platform
        return "unknown"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="cores for every implementation (default 2)")
    p.add_argument("--epochs", type=int, default=None,
                   help="timed epochs per implementation and case (default 5 large, 30 small)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: large case on {QUICK_LARGE_SAMPLES:,} samples")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    nncore = load_nncore()

    def log(msg: str) -> None:  # progress goes to stderr, so stdout holds only the tables or the JSON
        print(msg, file=sys.stderr, flush=True)

    with threadpool_limits(limits=args.threads):  # numpy, sklearn (and torch's) BLAS/OpenMP pools
        if not args.json:
            print_environment(args.threads)
        results = {}
        for name, (_, _, n_samples, default_epochs) in CASES.items():
            if name == "large" and args.quick:
                n_samples = QUICK_LARGE_SAMPLES
            epochs = args.epochs or default_epochs
            results[name], times = run_case(nncore, name, n_samples, epochs, args.threads, log)
            if not args.json:
                print_table(name, results[name], times, n_samples)
    if args.json:
        print(json.dumps({**results, "threads": args.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
