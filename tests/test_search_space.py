"""The search-space grammar (Hydra sweeper syntax) → Optuna distributions, fixed values and overrides."""

from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from experiments.config import register_configs, validate
from experiments.search_space import (
    RelativeDistribution,
    SearchSpaceError,
    as_overrides,
    grid_of,
    parse_search_space,
    relative_keys,
    scale_relative,
    suggest,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def dist(expression: str):
    """The one distribution of ``{"k": expression}``."""
    space, fixed = parse_search_space({"k": expression})
    assert fixed == {}
    return space["k"]


def compose_with(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# ---------------------------------------------------------------------------- choice
def test_choice_of_strings():
    assert dist("choice(sgd, adam)") == CategoricalDistribution(["sgd", "adam"])


def test_choice_of_numbers_keeps_their_types():
    d = dist("choice(32, 64, 0.5, true)")
    assert list(d.choices) == [32, 64, 0.5, True]
    assert [type(c) for c in d.choices] == [int, int, float, bool]


def test_choice_of_lists_travels_as_override_text_and_composes_back_to_lists():
    d = dist("choice([64,32], [16])")
    assert list(d.choices) == ["[64,32]", "[16]"]
    cfg = compose_with(*as_overrides({"model.hidden": d.choices[0]}))
    assert list(cfg.model.hidden) == [64, 32]


# ---------------------------------------------------------------------------- range
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("range(1, 3)", IntDistribution(1, 2)),                # stop excluded: 1, 2
        ("range(1, 2)", IntDistribution(1, 1)),                # a single value
        ("range(10, 30, 5)", IntDistribution(10, 25, step=5)),  # 10, 15, 20, 25
        ("range(10, 31, 5)", IntDistribution(10, 30, step=5)),
        ("range(5, 0, -2)", IntDistribution(1, 5, step=2)),     # counting down: 5, 3, 1
    ],
)
def test_int_range(expression, expected):
    assert dist(expression) == expected


@pytest.mark.parametrize(
    ("expression", "low", "high", "step"),
    [
        ("range(0.0, 0.3, 0.1)", 0.0, 0.2, 0.1),    # 0.3 is the stop: excluded
        ("range(0.0, 0.35, 0.1)", 0.0, 0.3, 0.1),
        ("range(1, 2.5)", 1.0, 2.0, 1.0),
        ("range(1.0, 0.5, -0.1)", 0.6, 1.0, 0.1),
    ],
)
def test_float_range(expression, low, high, step):
    d = dist(expression)
    assert isinstance(d, FloatDistribution) and not d.log
    assert (d.low, d.high, d.step) == pytest.approx((low, high, step))


def test_a_range_samples_only_its_own_values():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = parse_search_space({"a": "range(10, 30, 5)", "b": "range(0.0, 0.3, 0.1)"})[0]
    seen_a, seen_b = set(), set()
    for _ in range(60):
        trial = study.ask()
        values = suggest(trial, space)
        study.tell(trial, 0.0)
        seen_a.add(values["a"])
        seen_b.add(round(values["b"], 9))
    assert seen_a == {10, 15, 20, 25}
    assert seen_b == {0.0, 0.1, 0.2}


# ---------------------------------------------------------------------------- interval and tags
def test_interval_is_a_uniform_float():
    assert dist("interval(0.0, 0.3)") == FloatDistribution(0.0, 0.3)
    assert dist("interval(1, 4)") == FloatDistribution(1.0, 4.0)  # ints given, floats sampled


def test_log_interval():
    assert dist("tag(log, interval(1e-4, 1.0))") == FloatDistribution(1e-4, 1.0, log=True)


def test_int_interval_includes_both_ends():
    assert dist("tag(int, interval(1, 8))") == IntDistribution(1, 8)
    assert dist("tag(int, interval(1.5, 4.7))") == IntDistribution(2, 4)  # the integers inside


def test_log_int_interval():
    assert dist("tag(log, int, interval(8, 256))") == IntDistribution(8, 256, log=True)


# ---------------------------------------------------------------------------- fixed values
def test_plain_values_are_fixed_overrides_not_distributions():
    space, fixed = parse_search_space({
        "optimizer": "sgd", "model.width": 64, "optimizer.lr": 0.05, "model.hidden": "[64,32]",
        "model.depth": "null", "train.epochs": "range(3, 6)",
    })
    assert list(space) == ["train.epochs"]
    assert fixed == {"optimizer": "sgd", "model.width": "64", "optimizer.lr": "0.05",
                     "model.hidden": "[64,32]", "model.depth": "null"}
    cfg = compose_with(*as_overrides(fixed))
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.lr == 0.05 and cfg.model.width == 64
    assert list(cfg.model.hidden) == [64, 32] and cfg.model.depth is None


def test_the_shipped_spaces_parse():
    # the values of the shipped spaces are tests/test_config.py's business; here: every key is searched
    for sweep in ("default", "quick"):
        params = compose_with(f"sweep={sweep}").sweep.params
        space, fixed = parse_search_space(dict(params))
        assert set(space) == set(params) and fixed == {}
        assert isinstance(space["optimizer"], CategoricalDistribution)
        assert space["optimizer.lr"].log and isinstance(space["optimizer.lr"], FloatDistribution)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"optimizer.lr": "interval(1,)"}, "sweep.params.optimizer.lr: cannot parse 'interval(1,)'"),
        ({"optimizer.lr": "tag(log, interval(1e-3, 0.1)"}, "sweep.params.optimizer.lr: cannot parse"),
        ({}, "sweep.params is empty"),
        ({"optimizer.lr": "tag(log, interval(0, 1))"}, "a log interval needs low > 0"),
        ({"optimizer.lr": "tag(log, interval(-1, 1))"}, "a log interval needs low > 0"),
        ({"optimizer.lr": "interval(1, 1)"}, "interval needs low < high"),
        ({"optimizer.lr": "interval(2, 1)"}, "interval needs low < high"),
        ({"model.depth": "range(3, 3)"}, "'range(3, 3)' holds no value (the stop is excluded)"),
        ({"model.depth": "range(3, 1)"}, "holds no value"),
        ({"model.dropout": "range(0.5, 0.5, 0.1)"}, "holds no value"),
        ({"model.depth": "range(1, 5, 0)"}, "range step must not be 0"),
        ({"model.depth": "tag(int, interval(1.2, 1.7))"}, "holds no integer"),
        ({"data.path": "glob(*)"}, "unsupported sweep 'glob(*)'"),
        ({"optimizer.lr": "tag(relative, choice(0.5, 2))"}, "tag(relative, ...) takes a float interval"),
        ({"model.width": "tag(int, relative, interval(1, 4))"}, "tag(relative, ...) takes a float interval"),
    ],
    ids=lambda v: str(v),
)
def test_bad_expressions_raise_one_line_naming_the_key(params, message):
    with pytest.raises(SearchSpaceError) as info:
        parse_search_space(params)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


def test_grid_of_discrete_spaces():
    space = parse_search_space({
        "optimizer": "choice(sgd, adam)", "model.depth": "range(1, 4)", "train.epochs": "range(10, 30, 5)",
        "model.dropout": "range(0.0, 0.3, 0.1)", "model.width": "tag(int, interval(2, 4))",
    })[0]
    assert grid_of(space) == {
        "optimizer": ["sgd", "adam"], "model.depth": [1, 2, 3], "train.epochs": [10, 15, 20, 25],
        "model.dropout": [0.0, 0.1, 0.2], "model.width": [2, 3, 4],
    }


@pytest.mark.parametrize("expression", ["interval(0.0, 0.3)", "tag(log, interval(1e-4, 1))",
                                        "tag(log, int, interval(8, 256))"])
def test_grid_refuses_an_interval(expression):
    space = parse_search_space({"optimizer.lr": expression})[0]
    with pytest.raises(SearchSpaceError, match="sweep.params.optimizer.lr: the grid sampler needs choice"):
        grid_of(space)


# ---------------------------------------------------------------------------- as_overrides
@pytest.mark.parametrize(
    "value",
    [0.1, 1e-5, 0.00012345678901234567, 3.0e-9, 1e20, -0.5, 2.0, 0.0, 3, 0, -7, True, False, "adam", "he_normal"],
    ids=repr,
)
def test_as_overrides_round_trips_through_hydras_parser(value):
    (override,) = as_overrides({"optimizer.lr": value})
    parsed = OverridesParser.create().parse_override(override)
    assert parsed.key_or_group == "optimizer.lr"
    assert not parsed.is_sweep_override()
    assert parsed.value() == value and type(parsed.value()) is type(value)


def test_sampled_values_compose_bit_for_bit():
    space = parse_search_space(dict(compose_with().sweep.params))[0]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(5):
        trial = study.ask()
        values = suggest(trial, space)
        cfg = compose_with(*as_overrides(values))
        validate(cfg)
        assert cfg.optimizer.name == values["optimizer"]
        assert cfg.optimizer.lr == values["optimizer.lr"]  # no rounding on the way through text
        assert cfg.model.dropout == values["model.dropout"]
        assert (cfg.model.depth, cfg.model.width) == (values["model.depth"], values["model.width"])
        assert (cfg.train.batch_size, cfg.train.epochs) == (values["train.batch_size"], values["train.epochs"])
        study.tell(trial, 0.0)


def test_suggest_samples_inside_each_distribution():
    space = parse_search_space({"a": "choice(x, y)", "b": "tag(log, interval(1e-3, 1))",
                                "c": "tag(int, interval(1, 3))", "d": "range(0.0, 0.3, 0.1)"})[0]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, space)
        for key, value in values.items():
            assert space[key]._contains(space[key].to_internal_repr(value))
        assert trial.params == values
        study.tell(trial, 0.0)


# ---------------------------------------------------------------------------- tag(relative, ...)
def test_a_relative_interval_samples_a_factor_recorded_under_its_own_name():
    space = parse_search_space({"optimizer.lr": "tag(log, relative, interval(0.1, 10))", "optimizer": "choice(sgd)"})[0]
    assert isinstance(space["optimizer.lr"], RelativeDistribution) and space["optimizer.lr"].log
    assert relative_keys(space) == ["optimizer.lr"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = suggest(trial, space)
    assert set(trial.params) == {"optimizer.lr/default", "optimizer"}
    assert 0.1 <= values["optimizer.lr"] == trial.params["optimizer.lr/default"] <= 10
    scaled = scale_relative(values, space, {"optimizer.lr": 0.01}.get)
    assert scaled["optimizer.lr"] == values["optimizer.lr"] * 0.01 and scaled["optimizer"] == "sgd"


@pytest.mark.parametrize("base", [None, "adam", True, float("nan")], ids=repr)
def test_a_relative_key_needs_a_configured_number(base):
    space = parse_search_space({"optimizer.lr": "tag(relative, interval(0.5, 2))"})[0]
    with pytest.raises(SearchSpaceError, match=r"sweep.params.optimizer.lr: tag\(relative, ...\) needs a configured"):
        scale_relative({"optimizer.lr": 1.0}, space, lambda key: base)
