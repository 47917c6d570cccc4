"""What ``python run.py`` does with a composed config: a study or one run, and what it prints."""

import sys
import time

import optuna
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import nncore

from .composition import CheckAhead, SweepError, check_space, make_plan
from .config import OPTIMIZER_SCHEMAS, Config, ConfigError, TrackingConfig, resolve_task, split_seed, validate
from .data import DataError, load_dataset
from .search_space import FACTOR_SUFFIX, SearchSpaceError
from .storage import describe
from .sweep import (
    INTERRUPTED,
    add_study_seconds,
    code_mismatch,
    connect,
    count_failures,
    fail_dead_trials,
    grid_size,
    open_study,
    run_workers,
    study_counts,
    tied_best,
    work,
)
from .tracking import TrackingError, fetch_run, make_tracker, settings_of
from .trainer import train_config
from .urls import mask_password

USER_ERRORS = (ConfigError, DataError, SearchSpaceError, SweepError, TrackingError)
SHOWN_FAILURES = 3  # failed trials the summary names with their reason


def run(cfg: DictConfig, overrides: list[str], ahead: CheckAhead | None = None) -> int:
    """Run the job ``cfg.mode`` names; returns the process exit code. ``ahead``: the study's space
    check, started by run.py before it imported this module."""
    try:
        validate(cfg)
        if cfg.get("replay"):
            return replay(cfg)
        if cfg.mode == "train":
            return train_once(cfg)
        return sweep(cfg, overrides, ahead)
    except USER_ERRORS as err:
        print(f"error: {mask_password(str(err).splitlines()[0] if str(err) else type(err).__name__)}",
              file=sys.stderr)
        return 2


def train_once(cfg: DictConfig, reference: dict | None = None) -> int:
    """``mode=train``: one network with the composed config (BLAS and optimizer limited to
    ``train.threads``, as in a sweep's trial, so a replay reproduces a trial bit for bit).

    ``reference``: {metric: [(epoch, value)]} of a logged run this one replays; the curves are
    compared epoch by epoch and any difference is an error."""
    data = load_dataset(cfg.data, split_seed(cfg))
    tracker = make_tracker(cfg)
    tracker.check()  # an unreachable tracking store stops here, before training
    tracker.start_trial(None, cfg, {})
    bar = tqdm(total=cfg.train.epochs, desc="epochs", unit="epoch", leave=False)

    def on_epoch(m: nncore.EpochMetrics, kept: nncore.EpochMetrics) -> bool:
        tracker.log_epoch(m.as_dict(), m.epoch)
        bar.update(1)
        shown = "val_cost" if m.val_cost is not None else "train_cost"  # data.val_fraction=0: no val_cost
        bar.set_postfix({shown: f"{getattr(m, shown):.4g}"})
        return False

    try:
        with threadpool_limits(cfg.train.threads):
            result = train_config(cfg, data, on_epoch)
        tracker.end_trial("complete", result.final, result)
    except nncore.DivergenceError as err:
        tracker.end_trial("failed", {}, None, str(err))
        bar.close()
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        tracker.end_trial("failed", {}, None, INTERRUPTED)
        raise
    finally:
        finish_tracking(tracker)
    bar.close()
    final = dict(result.final)
    final.update(result.test_metrics(cfg, data))
    print(f"trained {data.name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in final.items()))
    run = tracker.train_run()
    if run is not None:
        settings = settings_of(cfg)
        print(f"mlflow: run {run[1]} (run id {run[0]}) in experiment {settings.experiment} of "
              f"{mask_password(settings.uri)}")
    if reference is not None:
        return compare_curves(cfg.replay, result.history, reference)
    return 0


REPLAYED = ("train_cost", "val_cost")


def replay(cfg: DictConfig) -> int:
    """``replay=RUN_ID``: retrain the run's logged config (its ``config.yaml`` artifact: same seed,
    data, network, optimizer) and check the new cost curves equal the logged ones, bit for bit.
    The new run is recorded as usual (``tracking``, from the command line), with param ``replay``."""
    stored, curves = fetch_run(str(cfg.tracking.uri), str(cfg.replay), REPLAYED)
    run_cfg = config_of_run(stored, str(cfg.replay))
    run_cfg.mode, run_cfg.replay = "train", str(cfg.replay)
    run_cfg.tracking = cfg.tracking
    validate(run_cfg)
    return train_once(run_cfg, curves)


def config_of_run(stored: dict, run_id: str) -> DictConfig:
    """A logged run's resolved config, checked against the schemas (``ConfigError`` when it does not fit)."""
    try:
        name = stored["optimizer"]["name"]
        base = OmegaConf.structured(Config(optimizer=OPTIMIZER_SCHEMAS[name]()))
        return OmegaConf.merge(base, stored)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"replay={run_id}: its config.yaml does not fit this version's schema: {reason}") from None


def compare_curves(run_id: str, history, reference: dict) -> int:
    """Print whether ``history`` (nncore.History) repeats the logged ``reference`` curves; 0 if it does."""
    epochs = {m.epoch: m for m in history.epochs}
    compared = 0
    for name in REPLAYED:
        for step, value in reference.get(name, []):
            if step not in epochs:
                continue
            mine = getattr(epochs[step], name)
            if mine is None or float(mine) != value:
                print(f"error: replay={run_id}: {name} differs at epoch {step}: logged {value!r}, now {mine!r}",
                      file=sys.stderr)
                return 1
            compared += 1
    if not compared:
        print(f"error: replay={run_id}: the run has no logged {' or '.join(REPLAYED)} to compare", file=sys.stderr)
        return 1
    steps = max(step for name in REPLAYED for step, _ in reference.get(name, []))
    print(f"replay={run_id}: {' and '.join(REPLAYED)} identical to the logged run over {steps} epochs")
    return 0


def sweep(cfg: DictConfig, overrides: list[str], ahead: CheckAhead | None = None) -> int:
    """``mode=sweep``: run (or resume) the study to ``sweep.n_trials`` and summarise it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar and the summary say it (as workers do)
    plan = make_plan(cfg, overrides)
    if ahead is None:
        check_space(plan)  # a key or value no trial could run stops here, before any study or run is made
    else:
        ahead.take(plan)  # the same check, done while run.py imported this module
    if "val_accuracy" in plan.metrics and resolve_task(cfg.data) == "regression":
        raise ConfigError("sweep.objective.metrics: val_accuracy needs a classification data set")
    load_dataset(cfg.data, split_seed(cfg))  # once, before the workers fork; bad data make no study
    tracker = make_tracker(cfg)
    tracker.check()  # an unreachable tracking store stops here, before the study is made
    storage = connect(plan)
    study = open_study(plan, storage=storage)
    mismatch = code_mismatch(study)
    if mismatch:  # sweep.allow_code_mismatch=false: open_study refused it
        print(f"warning: {mismatch}; its trials join the study (sweep.allow_code_mismatch=false refuses that)",
              file=sys.stderr)
    fail_dead_trials(study, storage)
    tracker.start_study(study, cfg)
    total = min(cfg.sweep.n_trials, grid_size(plan) or cfg.sweep.n_trials)  # a grid ends with its last point
    counts = study_counts(study)
    done = counts["complete"] + counts["pruned"] + counts["failed"]
    if done:
        todo = f"running {total - done} more" if done < total else "nothing to run"
        print(f"study {cfg.study_name}: {min(done, total)} of {total} trials already recorded; {todo}")
    session = time.monotonic()
    bar = tqdm(total=total, initial=min(done, total), desc=f"study {cfg.study_name}", unit="trial")

    def on_progress(study: optuna.Study, state: str | None = None) -> None:
        counts = study_counts(study)
        bar.n = min(total, counts["complete"] + counts["pruned"] + counts["failed"])
        best = _best_value(study)
        if best is not None:
            bar.set_postfix(best=f"{best:.4g}", pruned=counts["pruned"], failed=counts["failed"], refresh=False)
        bar.refresh()

    try:
        if cfg.sweep.n_workers == 1:
            work(plan, 0, on_progress, tracker)
        else:
            run_workers(plan, on_progress, tracker)
    except KeyboardInterrupt:
        bar.close()
        add_study_seconds(study, plan, time.monotonic() - session)
        finish_tracking(tracker, study, interrupted=True)
        counts = study_counts(study)
        print(f"\ninterrupted: {counts['complete'] + counts['pruned'] + counts['failed']} of {total} trials are "
              f"recorded in {describe(cfg.sweep.storage)}. Run the same command again to resume.", file=sys.stderr)
        return 130
    except BaseException:
        bar.close()  # now, not at exit: the traceback is the last thing the terminal shows
        finish_tracking(tracker, study, interrupted=True)
        raise
    bar.close()
    add_study_seconds(study, plan, time.monotonic() - session)
    try:
        finish_tracking(tracker, study)
    except KeyboardInterrupt:  # the trials are over; the tracking process was writing the summary
        print(f"\ninterrupted while the study's MLflow records were written: its trials are recorded in "
              f"{describe(cfg.sweep.storage)}. Run the same command again to finish the records.", file=sys.stderr)
        return 130
    return summarise(cfg, study)


def finish_tracking(tracker, study: optuna.Study | None = None, interrupted: bool = False) -> None:
    """Summarise the study in the tracker, wait until every record is written, say what was not."""
    if study is not None:
        tracker.end_study(study, interrupted)
    tracker.close()
    problem = tracker.problems()
    if problem:
        print(f"warning: tracking: {problem}", file=sys.stderr)


def _best_value(study: optuna.Study):
    if len(study.directions) > 1:
        return None
    try:
        return study.best_value
    except ValueError:
        return None


def _shown_param(trial: optuna.trial.FrozenTrial, name: str, value) -> str:
    """``key=value``; a factor of the key's default (``optimizer.lr/default``) as the value it gave,
    ``optimizer.lr=0.00109 (1.09 x default)``."""
    key = name.removesuffix(FACTOR_SUFFIX)
    if key != name and key in trial.user_attrs:
        return f"{key}={_fmt(trial.user_attrs[key])} ({_fmt(value)} x default)"
    return f"{name}={_fmt(value)}"


def summarise(cfg: DictConfig, study: optuna.Study) -> int:
    """Print the best trial, the counts, where things are, and what to run next."""
    counts = study_counts(study)
    retried = counts["retried"] and f" ({counts['retried']} more failed when their worker died and were run again)"
    print(f"\nstudy {cfg.study_name}: {counts['complete']} complete, {counts['pruned']} pruned, "
          f"{counts['failed']} failed{retried or ''}")
    best = study.best_trials
    failures = count_failures(study)
    stopped = failures > cfg.sweep.max_failures
    if not best:
        print("no trial completed", file=sys.stderr)
    window = int(cfg.sweep.objective.window)
    metrics = [m if window == 1 or m == "n_params" else f"{m} (mean of the last {window} epochs)"
               for m in cfg.sweep.objective.metrics]
    ties = tied_best(study)
    for trial in best[:3]:
        values = ", ".join(f"{m}={_fmt(v)}" for m, v in zip(metrics, trial.values))
        print(f"best trial #{trial.number}: {values}")
        if len(ties) > 1:
            shown = ", ".join(f"#{t}" for t in ties[:10]) + (", ..." if len(ties) > 10 else "")
            print(f"  the best value is tied among {len(ties)} trials ({shown}); #{trial.number} is the first "
                  "of them, not a better one")
        extra = {k: v for k, v in trial.user_attrs.items()
                 if k in ("val_accuracy", "train_cost", "restored_epoch", "epochs_run")}
        if extra:
            print("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in extra.items()))
        print("  " + " ".join(_shown_param(trial, k, v) for k, v in trial.params.items()))
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    for trial in failed[:SHOWN_FAILURES]:
        reason = trial.user_attrs.get("fail_reason", "its process ended before it could say why")
        print(f"failed trial #{trial.number}: {reason}")
    if len(failed) > SHOWN_FAILURES:
        more = len(failed) - SHOWN_FAILURES
        print(f"  and {more} more failed trial{'s' if more > 1 else ''} (each with its fail_reason)")
    print(f"optuna study: {describe(cfg.sweep.storage)} (study_name={cfg.study_name})")
    if cfg.tracking.enabled:
        settings = settings_of(cfg)
        uri = settings.location  # as given, password masked
        print(f"mlflow: {mask_password(settings.uri)} (experiment={settings.experiment})")
        web = uri.startswith(("http://", "https://"))
        dashboards = f"open {uri}" if web else f"mlflow ui --backend-store-uri {uri}"
        report = "" if uri == TrackingConfig.uri else f" --tracking-uri {uri}"
        print(f"next: {dashboards}   |   python -m analysis.report{report}")
    else:
        print("mlflow: off (tracking=none): no curves or weights recorded, so no dashboards and no analysis report")
    if stopped:
        print(f"error: the sweep stopped after {failures} failed trials (sweep.max_failures="
              f"{cfg.sweep.max_failures}); see each trial's fail_reason", file=sys.stderr)
    return 1 if stopped or not best else 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
