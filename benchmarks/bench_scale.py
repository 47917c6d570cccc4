"""Trial throughput of one study with 1, 2 and 4 workers: PostgreSQL against the embedded journal file.

Each point is ``python run.py`` from an empty temp dir with ``sweep.n_workers=W`` and
``tracking=none``, over the same fixed grid (grid sampler, no pruning: every run trains the same
N configurations, whatever W), on

- journal     the default embedded storage, an Optuna journal file (one machine);
- postgresql  a PostgreSQL server this script starts on 127.0.0.1 (tests/services.py) and stops at
              the end, a new database per run: the shape of a study that spans machines (heartbeats
              on, the claim lock an advisory lock).

Throughput = N / (last trial's end - first trial's start), from the study's own records: interpreter
and server start-up are not counted; ``wall`` is the whole command. ``--samples`` and ``--batch`` set
every trial's length: short trials (the default, ~0.1 s) measure what the storage costs per trial,
long ones (``--samples 4000 --batch 4``, ~1 s) how the training itself scales. On a 2-core machine
4 workers share 2 cores.

Run it (about a minute on 2 cores)::

    python benchmarks/bench_scale.py                              # 48 short trials (3-5 epochs, 400 samples)
    python benchmarks/bench_scale.py --samples 4000 --batch 4     # 48 longer ones
    python benchmarks/bench_scale.py --trials 24 --workers 1 2

A script that prints figures, not a test.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LRS = ("0.01", "0.02", "0.05", "0.1", "0.2", "0.5")
WIDTHS = ("8", "16", "32", "64")


def grid(trials: int) -> list[str]:
    """Overrides of a grid of at least ``trials`` points over lr x width x epochs 3..5 (all must be choices)."""
    lrs = LRS[:max(1, min(len(LRS), -(-trials // (len(WIDTHS) * 3))))]
    return ['sweep.params={optimizer.lr: "choice(' + ", ".join(lrs) + ')", model.width: "choice('
            + ", ".join(WIDTHS) + ')"}', "~sweep.params.optimizer", "sweep.sampler.name=grid",
            "sweep.pruner.name=none"]


def run_study(storage: str, workers: int, trials: int, cwd: Path, extra: list[str]) -> dict:
    """One study with ``workers`` workers; its trial throughput and wall time."""
    import optuna

    from experiments.storage import open_storage

    command = [sys.executable, str(ROOT / "run.py"), "experiment=quick", "tracking=none", f"sweep.storage={storage}",
               f"sweep.n_trials={trials}", f"sweep.n_workers={workers}", "study_name=bench-scale", *grid(trials),
               *extra]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} failed:\n{proc.stderr[-2000:]}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="bench-scale", storage=open_storage(storage if "://" in storage
                                                                             else str(cwd / storage)))
    done = [t for t in study.trials if t.datetime_complete is not None]
    assert len(done) == trials, (len(done), trials)
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {"trials": len(done), "span": span, "rate": len(done) / span, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--samples", type=int, default=400, help="data.n_samples of two moons (400: quick's)")
    parser.add_argument("--batch", type=int, default=32, help="train.batch_size")
    args = parser.parse_args()

    from tests.services import Postgres

    print(f"# bench_scale: {args.trials} trials (grid, no pruning, tracking off; two moons, {args.samples} samples, "
          f"batch {args.batch}), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start, "
          f"Python {platform.python_version()}")
    print("| storage | workers | trials/s | seconds (trials) | wall s (whole command) | speed-up |")
    print("|---|---|---|---|---|---|")
    postgres = Postgres().start()
    try:
        for kind in ("journal", "postgresql"):
            base = None
            for workers in args.workers:
                with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
                    storage = "optuna.journal" if kind == "journal" else \
                        postgres.create_database(f"bench_{workers}_{int(time.time() * 1000)}")
                    r = run_study(storage, workers, args.trials, Path(folder),
                                  [f"data.n_samples={args.samples}", f"train.batch_size={args.batch}"])
                base = base or r["rate"]
                print(f"| {kind} | {workers} | {r['rate']:.1f} | {r['span']:.2f} | {r['wall']:.1f} | "
                      f"{r['rate'] / base:.2f}x |", flush=True)
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
