"""A study's plan and each trial's config: the user's overrides plus the trial's sampled values.

Hydra composes the config of each combination of sampled config groups (``optimizer=adam``) once
per process (~0.1 s each, as much as a short trial); the sampled plain values are then set on a
copy as Hydra sets them. ``CheckAhead`` runs ``check_space`` (and so these compositions) in a
forked process while run.py imports the rest of the harness, and hands the configs over.
This module imports neither scikit-learn nor the tracking code: run.py loads it before forking.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import pickle
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from optuna.distributions import CategoricalDistribution

from .config import SCHEMA_PREFIX, ConfigError, validate
from .search_space import (
    SearchSpaceError,
    as_overrides,
    grid_of,
    param_name,
    parse_search_space,
    relative_keys,
    scale_relative,
)

MAX_CHECKED = 32  # combinations of group options check_space composes; beyond that, each option once


class SweepError(RuntimeError):
    """A sweep that cannot start or must stop; the message is one line."""


@dataclass
class SweepPlan:
    """What every worker needs to run trials of one study (picklable)."""

    cfg: DictConfig                # the composed base config
    base_overrides: list[str]      # the user's overrides, minus the searched keys
    space: dict                    # key -> optuna distribution
    fixed: dict[str, str] = field(default_factory=dict)
    via_hydra: dict[str, bool] = field(default_factory=dict)  # searched key -> set by Hydra's composition
    composed: dict = field(default_factory=dict, repr=False)  # group overrides -> pickled config, per process
    parsed: dict = field(default_factory=dict, repr=False)     # override text -> Hydra's parse (cache)

    @property
    def directions(self) -> list[str]:
        return list(self.cfg.sweep.objective.directions)

    @property
    def metrics(self) -> list[str]:
        return list(self.cfg.sweep.objective.metrics)

    @property
    def window(self) -> int:
        """The epochs a trial's objective averages (``sweep.objective.window``)."""
        return int(self.cfg.sweep.objective.window)


def make_plan(cfg: DictConfig, overrides: list[str]) -> SweepPlan:
    """Parse the search space and keep the user's overrides that the space does not sample."""
    space, fixed = parse_search_space(OmegaConf.to_container(cfg.sweep.params, resolve=True))
    parser = OverridesParser.create()
    parsed = [parser.parse_override(o) for o in overrides]
    if any(o.key_or_group == "sweep.params" and not o.is_delete() and o.value() == {} for o in parsed):
        raise SearchSpaceError("sweep.params={}: an empty search space cannot be searched (and Hydra merges {} into "
                               "the configured space, changing nothing); name at least one key to search")
    searched = set(space) | set(fixed)
    kept = [o for o, p in zip(overrides, parsed) if p.key_or_group not in searched]
    plan = SweepPlan(cfg, kept, space, fixed, {key: _via_hydra(key) for key in space})
    if cfg.sweep.sampler.name == "grid":
        grid_of(space)
    if len(plan.metrics) > 1 and cfg.sweep.pruner.name != "none":
        raise SweepError("pruning needs a single objective: set sweep.pruner.name=none for several metrics")
    return plan


def real_options(group: str) -> list[str]:
    """The options of config group ``group`` a user may choose (the schemas ``base_*`` left out)."""
    options = GlobalHydra.instance().config_loader().get_group_options(group)
    return sorted(o for o in options if not o.startswith(SCHEMA_PREFIX))


def check_space(plan: SweepPlan) -> None:
    """Every searched key and value composes and validates before a study is made: each option of a
    searched config group exists, and every plain key takes each of its choices (an interval or range:
    its ends) with every combination of the searched groups' options. ``SearchSpaceError`` names the
    key and the value."""
    groups = {}
    for key, dist in plan.space.items():
        group = OverridesParser.create().parse_override(f"{key}=0").key_or_group
        if not plan.via_hydra[key] or not GlobalHydra.instance().config_loader().get_group_options(group):
            continue
        if not isinstance(dist, CategoricalDistribution):
            raise SearchSpaceError(f"sweep.params.{key}: a config group takes choice(...) of its options "
                                   f"({', '.join(real_options(group))}), not an interval or range")
        unknown = [c for c in dist.choices if str(c) not in real_options(group)]
        if unknown:
            raise SearchSpaceError(f"sweep.params.{key}: {unknown[0]!r} is not an option of group {group}; "
                                   f"available options: {', '.join(real_options(group))}")
        groups[key] = list(dist.choices)
    plain = {key: _trial_values(dist) for key, dist in plan.space.items() if key not in groups}
    first = {key: values[0] for key, values in plain.items()}
    chosen = {key: values[0] for key, values in groups.items()}
    if math.prod(len(v) for v in groups.values()) <= MAX_CHECKED:
        combinations = [dict(zip(groups, c)) for c in itertools.product(*groups.values())]
    else:  # each option once, the other groups at their first
        combinations = [{**chosen, key: option} for key, options in groups.items() for option in options]
    for combination in combinations:
        _check_values(plan, {**combination, **first}, ", ".join(f"{k}={v}" for k, v in combination.items()))
    for key, values in plain.items():
        for value in values[1:]:
            _check_values(plan, {**chosen, **first, key: value}, f"{param_name(key, plan.space[key])}={value!r}")


class CheckAhead:
    """``check_space`` of one run's study, started in a forked process before run.py imports the rest
    of the harness (~1 s, as long as composing the 7 optimizers of the default space)."""

    def __init__(self, cfg: DictConfig, overrides: list[str]):
        self.pool = ProcessPoolExecutor(1, multiprocessing.get_context("fork"), initializer=signal.signal,
                                        initargs=(signal.SIGINT, signal.SIG_IGN))  # Ctrl-C is run.py's
        self.future = self.pool.submit(_checked_configs, cfg, list(overrides))

    def take(self, plan: SweepPlan) -> None:
        """The checked configs into ``plan.composed``; raises what ``check_space`` raised there (its
        errors are the same whichever process finds them). A check that died is done again here."""
        try:
            plan.composed.update(self.future.result())
        except BrokenProcessPool:
            check_space(plan)
        finally:
            self.close()

    def close(self) -> None:
        """End the process (also when the run stopped before ``take``: a bad config, a replay)."""
        self.pool.shutdown(cancel_futures=True)


def _checked_configs(cfg: DictConfig, overrides: list[str]) -> dict:
    plan = make_plan(cfg, overrides)
    check_space(plan)
    return plan.composed


def _trial_values(dist) -> list:
    """The values of a distribution a check tries: every choice, or the two ends."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def _check_values(plan: SweepPlan, values: dict, what: str) -> None:
    try:
        compose_trial(plan, scaled_values(plan, values))
    except (HydraException, OmegaConfBaseException, ConfigError) as err:
        reason = " ".join(str(err).split())
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
            reason += " " + str(cause).strip().splitlines()[0]
        key = next((k for k in sorted(values, key=len, reverse=True) if k in reason), None)
        where = f"sweep.params.{key}" if key is not None else "sweep.params"
        raise SearchSpaceError(f"{where}: a trial with {what} cannot run: {reason}") from None


def scaled_values(plan: SweepPlan, values: dict) -> dict:
    """``values`` with each ``tag(relative, ...)`` factor times the key's value in the trial's config
    without the sampled plain values (``optimizer.lr``: the chosen optimizer's default)."""
    relative = relative_keys(plan.space)
    if not relative:
        return values
    base = compose_trial(plan, {k: v for k, v in values.items() if k not in relative})
    return scale_relative(values, plan.space, lambda key: OmegaConf.select(base, key))


def compose_trial(plan: SweepPlan, values: dict) -> DictConfig:
    """The validated config of one trial: base overrides + fixed + sampled values.

    Equal to Hydra's composition of all of them: the sampled group choices (and any ``+key``,
    ``~key`` or sweep) are composed by Hydra, once per combination; the sampled plain values are
    set with ``OmegaConf.update(merge=True)``, as Hydra sets an override.
    """
    groups, settings = [], []
    for key, value in values.items():
        if key not in plan.via_hydra:  # a key from outside the space
            plan.via_hydra[key] = _via_hydra(key)
        text = as_overrides({key: value})[0]
        if type(value) in (int, float) and not plan.via_hydra[key]:
            settings.append((key, value, text))  # a number parses back to itself: no parsing needed
            continue
        override = _parse(plan, text)
        if plan.via_hydra[key] or override.is_sweep_override():
            groups.append(override.input_line)
        else:
            settings.append((override.key_or_group, override.value(), override.input_line))
    key = tuple(groups)
    if key not in plan.composed:
        plan.composed[key] = pickle.dumps(compose(config_name="config", overrides=_overrides(plan, key)))
    cfg = pickle.loads(plan.composed[key])  # a deep copy at a third of copy.deepcopy's cost
    for name, value, line in settings:
        try:
            OmegaConf.update(cfg, name, value, merge=True)
        except (ConfigAttributeError, ConfigKeyError) as err:
            raise ConfigCompositionException(f"Could not override '{name}'.") from err
        except OmegaConfBaseException as err:
            raise ConfigCompositionException(f"Error merging override {line}") from err
    validate(cfg)
    return cfg


def _parse(plan: SweepPlan, text: str):
    if text not in plan.parsed:
        plan.parsed[text] = OverridesParser.create().parse_override(text)
    return plan.parsed[text]


def _via_hydra(key: str) -> bool:
    """Whether a searched key needs Hydra's composition: a config group, or ``+key``/``~key``/``++key``."""
    override = OverridesParser.create().parse_override(f"{key}=0")
    group = bool(GlobalHydra.instance().config_loader().get_group_options(override.key_or_group))
    return group or override.is_add() or override.is_delete() or override.is_force_add()


def _overrides(plan: SweepPlan, groups: tuple[str, ...]) -> list[str]:
    return plan.base_overrides + as_overrides(plan.fixed) + list(groups)
