"""The summary of a study on its parent run: a few metrics (charts in the UI), tags, a Markdown note.

The note names the best trial (or the Pareto front), the trials tied with it, why trials were
pruned or failed, the study's wall time, and the artifacts the run holds.
"""

from __future__ import annotations

import optuna

from .schema import EPOCH_METRICS, STUDY_SECONDS, is_number

SUMMARY_METRICS = ("val_cost", "val_accuracy", "test_cost", "test_accuracy")  # the best trial's, on the parent


def study_summary(study, names: list[str], child_metrics, experiment_id: str | None = None) -> tuple[dict, dict, str]:
    """Metrics, tags and the run description that summarise the study on its parent run.

    ``names``: the objective's metrics (``sweep.objective.metrics``); ``child_metrics(number)``: the
    final and test metrics of trial ``number``'s run (and its ``run_id``); ``experiment_id``: the MLflow
    experiment's, for the link to the best trial's run in the description. Few metrics (each becomes
    a chart in the UI's chart view): the best trial's objective, val and test metrics. Counts, the best
    trial's number, run id, hyperparameters and its other results are tags."""
    S = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    counts = {"complete": states.count(S.COMPLETE), "pruned": states.count(S.PRUNED),
              "failed": states.count(S.FAIL), "running": states.count(S.RUNNING)}
    metrics: dict[str, float] = {}
    tags = {f"trials.{k}": str(v) for k, v in counts.items()}
    complete = counts["complete"] > 0
    best = ([study.best_trial] if complete else []) if len(study.directions) == 1 else study.best_trials
    lines = [f"Optuna study **{study.study_name}**: {counts['complete']} complete, {counts['pruned']} pruned, "
             f"{counts['failed']} failed trials (one child run each, `trial-NNNN`)."]
    if len(study.directions) == 1 and best:  # (best_trials would list every trial tied for best)
        trial = best[0]
        child = child_metrics(trial.number)
        if "run_id" in child:
            tags["best.run_id"] = child.pop("run_id")
        results = {k: v for k, v in {**child, **trial.user_attrs}.items() if is_number(v) and _is_result(k)}
        metrics.update({f"best.{n}": v for n, v in zip(names, trial.values)})
        metrics.update({f"best.{k}": v for k, v in results.items() if k in SUMMARY_METRICS})
        tags.update({f"best.{k}": str(v) for k, v in results.items() if f"best.{k}" not in metrics})
        tags.update({"best.trial_number": str(trial.number), **{f"best.{k}": str(v)
                                                                 for k, v in trial.params.items()}})
        values = ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, trial.values))
        name = f"`trial-{trial.number:04d}`"
        if "best.run_id" in tags and experiment_id is not None:  # the UI's own address of the run, relative
            name = f"[{name}]({run_link(experiment_id, tags['best.run_id'])}), tagged `best=true`"
        lines.append(f"Best: trial {trial.number} ({name}), {values}; "
                     + ", ".join(f"{k} = {_short(v)}" for k, v in trial.params.items()) + ".")
        ties = [t.number for t in trials if t.state == S.COMPLETE and t.values == trial.values]
        if len(ties) > 1:
            tags["best.tied"] = str(len(ties))
            shown = ", ".join(map(str, ties[:20])) + (", ..." if len(ties) > 20 else "")
            lines.append(f"The best value is tied among {len(ties)} trials ({shown}): trial {trial.number} "
                         "is the first, not a better one.")
    elif best:
        tags["best.trial_numbers"] = ", ".join(str(t.number) for t in best)
        lines.append("Pareto front: trials " + tags["best.trial_numbers"] + ".")
    for state, attr, word in ((S.PRUNED, "prune_reason", "Pruned"), (S.FAIL, "fail_reason", "Failed")):
        reasons: dict[str, list[int]] = {}
        for t in trials:
            if t.state == state:
                reasons.setdefault(t.user_attrs.get(attr, "no reason recorded"), []).append(t.number)
        if reasons:
            lines.append(f"{word}: " + "; ".join(f"trials {', '.join(map(str, numbers))}: {reason}" for
                                                  reason, numbers in reasons.items())[:2000] + ".")
    seconds = study.user_attrs.get(STUDY_SECONDS)
    if seconds is not None:
        metrics["study.seconds"] = float(seconds)
        lines.append(f"Study time: {float(seconds):.1f} s, the wall times of its sessions summed (metric "
                     "`study.seconds`); the run's Duration spans from the first session's start to the last's end.")
    lines.append("Artifacts: `plots/` (optimization history, parameter importances, parallel coordinates, "
                 "intermediate values) and `trials.csv`.")
    return metrics, tags, "\n\n".join(lines)


def run_link(experiment_id: str, run_id: str) -> str:
    """The MLflow UI's address of a run, relative to the UI's page (its hash route)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _is_result(name: str) -> bool:
    """A metric of a trained net (not a bookkeeping attr such as pid or seed)."""
    return (name in EPOCH_METRICS[:-1] or name in ("epochs_run", "n_params", "restored_epoch")
            or name.startswith("test_"))
