"""The search space: Hydra sweeper grammar in ``sweep.params`` turned into Optuna distributions.

``choice(a, b, ...)`` → categorical; ``range(a, b[, step])`` → int (or float) steps from ``a``
up to but excluding ``b``, as Python's and Hydra's ``range``; ``interval(a, b)`` → uniform float;
``tag(log, interval(a, b))`` → log-uniform; ``tag(int, interval(a, b))`` → integers in [a, b].
``tag(relative, ...)`` on an interval samples a factor: the trial's value is the factor times the key's
value in the trial's config before the sampled plain values are set (``optimizer.lr``: the chosen
optimizer's own default), so one range fits every optimizer. Optuna records the factor as
``<key>/default`` (:func:`param_name`). A plain value (``model.width: 64``) is fixed for every trial.
Parsing is Hydra's own.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
from hydra.errors import HydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

RELATIVE = "relative"  # the tag of an interval sampled as a factor of the key's configured value
FACTOR_SUFFIX = "/default"  # what Optuna's name of a factor adds to its key


class SearchSpaceError(ValueError):
    """A search-space entry that cannot be parsed or sampled."""


class RelativeDistribution(FloatDistribution):
    """``tag(relative, interval(a, b))``: a factor in [a, b] of the key's value in the trial's config."""


def param_name(key: str, dist: BaseDistribution) -> str:
    """The name Optuna records ``key``'s sampled value under: ``key``, or ``key/default`` for a factor."""
    return key + FACTOR_SUFFIX if isinstance(dist, RelativeDistribution) else key


def relative_keys(space: Mapping[str, BaseDistribution]) -> list[str]:
    """The keys of ``space`` sampled as factors (``tag(relative, ...)``)."""
    return [key for key, dist in space.items() if isinstance(dist, RelativeDistribution)]


def scale_relative(values: Mapping[str, Any], space: Mapping[str, BaseDistribution],
                   configured: Callable[[str], Any]) -> dict[str, Any]:
    """``values`` with each relative key's factor times ``configured(key)``, the key's value in the
    trial's config without the sampled plain values; ``SearchSpaceError`` when that is not a number."""
    scaled = dict(values)
    for key in relative_keys(space):
        base = configured(key)
        if isinstance(base, bool) or not isinstance(base, int | float) or not math.isfinite(base):
            raise SearchSpaceError(f"sweep.params.{key}: tag(relative, ...) needs a configured number to scale, "
                                   f"got {base!r}")
        scaled[key] = float(values[key]) * base
    return scaled


def _categorical_value(value: Any) -> Any:
    """Optuna keeps None, bool, int, float and str; anything else travels as its override text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return Transformer.encode(value)


def _distribution(key: str, text: str, value) -> BaseDistribution:
    if RELATIVE in getattr(value, "tags", ()) and not (isinstance(value, IntervalSweep) and "int" not in value.tags):
        raise SearchSpaceError(f"sweep.params.{key}: tag(relative, ...) takes a float interval, got {text!r}")
    if isinstance(value, ChoiceSweep):
        if not value.list:
            raise SearchSpaceError(f"sweep.params.{key}: choice() needs at least one option, got {text!r}")
        return CategoricalDistribution([_categorical_value(v) for v in value.list])
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if step == 0:
            raise SearchSpaceError(f"sweep.params.{key}: range step must not be 0, got {text!r}")
        count = max(0, math.ceil((stop - start) / step - 1e-9))  # as Python's range(): stop excluded
        if count == 0:
            raise SearchSpaceError(f"sweep.params.{key}: {text!r} holds no value (the stop is excluded)")
        low, high = sorted((start, start + (count - 1) * step))  # a negative step counts down
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(low, high, step=abs(step))
        return FloatDistribution(round(low, 12), round(high, 12), step=float(abs(step)))
    if isinstance(value, IntervalSweep):
        low, high, tags = value.start, value.end, value.tags
        if not low < high:
            raise SearchSpaceError(f"sweep.params.{key}: interval needs low < high, got {text!r}")
        log = "log" in tags
        if log and low <= 0:
            raise SearchSpaceError(f"sweep.params.{key}: a log interval needs low > 0, got {text!r}")
        if "int" in tags:
            if math.ceil(low) > math.floor(high):
                raise SearchSpaceError(f"sweep.params.{key}: {text!r} holds no integer")
            return IntDistribution(math.ceil(low), math.floor(high), log=log)
        if RELATIVE in tags:
            return RelativeDistribution(float(low), float(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise SearchSpaceError(f"sweep.params.{key}: unsupported sweep {text!r}; use choice, range or interval")


def parse_search_space(params: Mapping[str, Any]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """``{dotted key: expression}`` → (Optuna distributions, fixed overrides ``{key: text}``)."""
    if not params:
        raise SearchSpaceError("sweep.params is empty: name at least one key to search, e.g. "
                               "sweep.params={optimizer.lr:'tag(log, interval(1e-4, 1))'}")
    parser = OverridesParser.create()
    space, fixed = {}, {}
    for key, expression in params.items():
        text = str(expression)
        try:
            override = parser.parse_override(f"{key}={text}")
        except HydraException as err:
            reason = str(err).splitlines()[0]
            raise SearchSpaceError(f"sweep.params.{key}: cannot parse {text!r}: {reason}") from None
        if override.is_sweep_override():
            space[key] = _distribution(key, text, override.value())
        else:
            fixed[key] = override.get_value_element_as_str()
    return space, fixed


def grid_of(space: Mapping[str, BaseDistribution]) -> dict[str, list]:
    """Every value of a discrete space, for Optuna's GridSampler."""
    grid = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:  # a float range()
            n = round((dist.high - dist.low) / dist.step)
            grid[key] = [round(dist.low + i * dist.step, 12) for i in range(n + 1)]
        else:
            raise SearchSpaceError(f"sweep.params.{key}: the grid sampler needs choice() or range(), not an interval")
    return grid


def suggest(trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Sample every key of the space for an Optuna trial (a relative key: its factor, see :func:`scale_relative`)."""
    values = {}
    for key, dist in space.items():
        name = param_name(key, dist)
        if isinstance(dist, CategoricalDistribution):
            values[key] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[key] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            values[key] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return values


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """Sampled or fixed values as Hydra overrides ``key=value``."""
    return [f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}" for key, value in values.items()]
