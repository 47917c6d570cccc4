"""Config composition (Hydra + schemas), validate(), resolve_model() and flatten()."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from experiments import config as C
from nncore import make_optimizer

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("data", "model", "optimizer", "train", "sweep", "tracking")
# options that need more than their file to pass validate()
EXTRA = {("data", "csv"): ["data.path=table.csv", "data.target=label"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def make(*overrides: str):
    """The composed root config for ``overrides`` (a DictConfig)."""
    C.register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# ---------------------------------------------------------------------------- composition
@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_group_option_composes_and_validates(group, option):
    cfg = make(f"{group}={option}", *EXTRA.get((group, option), []))
    C.validate(cfg)
    assert OmegaConf.is_config(cfg[group])


def test_every_group_has_its_options():
    assert options("data") == sorted(C.DATASETS)
    assert options("optimizer") == sorted(C.OPTIMIZERS)
    assert options("model") == ["mlp"]
    assert options("train") == ["default"]
    assert set(options("sweep")) >= {"default", "quick"}
    assert options("tracking") == ["mlflow", "none"]


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_preset_composes_and_validates(name):
    cfg = make(f"experiment={name}")
    C.validate(cfg)


def test_quick_experiment_is_a_tiny_moons_study():
    cfg = make("experiment=quick")
    assert cfg.data.name == "moons"
    assert cfg.sweep.n_trials == 8
    assert cfg.train.epochs <= 10
    assert cfg.study_name != "digits-default"
    # command-line overrides still win over the preset
    cfg = make("experiment=quick", "train.epochs=2", "data=circles")
    assert (cfg.train.epochs, cfg.data.name) == (2, "circles")


def test_plus_experiment_is_taken_as_experiment_by_run_py():
    # Hydra 1.3 alone refuses `+experiment=NAME` because the defaults list has the slot;
    # run.py rewrites it to `experiment=NAME` before Hydra parses the command line.
    with pytest.raises(ConfigCompositionException, match="Multiple values for experiment"):
        make("+experiment=quick")
    from run import accept_plus_experiment

    argv = ["run.py", "+experiment=quick", "+train.foo=1", "experiment=x"]
    assert accept_plus_experiment(argv) == ["run.py", "experiment=quick", "+train.foo=1", "experiment=x"]


def test_defaults():
    cfg = make()
    C.validate(cfg)
    assert (cfg.mode, cfg.study_name) == ("sweep", "digits-default")
    assert cfg.data.name == "digits" and cfg.data.scale is True
    assert (cfg.data.val_fraction, cfg.data.test_fraction) == (0.2, 0.2)
    assert list(cfg.model.hidden) == [64] and cfg.model.activation == "relu"
    assert (cfg.model.output, cfg.model.init, cfg.model.dropout) == ("auto", "auto", 0.0)
    assert cfg.optimizer.name == "adam"
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.cost) == (20, 32, "auto")
    assert (cfg.train.dtype, cfg.train.threads, cfg.train.early_stopping.patience) == ("float32", 1, 0)
    assert (cfg.sweep.n_trials, cfg.sweep.n_workers, cfg.sweep.storage) == (50, 2, "optuna.journal")
    assert (cfg.sweep.sampler.name, cfg.sweep.pruner.name) == ("tpe", "successive_halving")
    assert (cfg.sweep.pruner.min_resource, cfg.sweep.pruner.reduction_factor) == (7, 3)
    assert list(cfg.sweep.objective.metrics) == ["val_cost"]
    assert list(cfg.sweep.objective.directions) == ["minimize"]
    assert cfg.tracking.enabled and cfg.tracking.uri == "sqlite:///mlflow.db"
    assert cfg.tracking.experiment is None


def test_default_search_space():
    assert dict(make().sweep.params) == {
        "optimizer": "choice(sgd, rmsprop, adagrad, adadelta, adam, adamax, nadam)",
        "optimizer.lr": "tag(log, interval(1e-4, 1.0))",
        "model.depth": "range(1, 3)",
        "model.width": "choice(64, 128, 256)",
        "model.activation": "choice(relu, tanh, sigmoid, leaky_relu)",
        "model.dropout": "interval(0.0, 0.3)",
        "train.batch_size": "choice(16, 32, 64, 128)",
        "train.epochs": "range(20, 65, 10)",
    }


def test_search_space_keys_can_be_changed_added_and_dropped_on_the_command_line():
    cfg = make(
        'sweep.params={optimizer.lr: "interval(0.01, 0.1)"}',
        '+sweep.params={model.init: "choice(glorot_uniform, he_normal)"}',
        "~sweep.params.optimizer",
    )
    assert cfg.sweep.params["optimizer.lr"] == "interval(0.01, 0.1)"
    assert cfg.sweep.params["model.init"] == "choice(glorot_uniform, he_normal)"
    assert "optimizer" not in cfg.sweep.params


def test_tracking_none_disables():
    assert make("tracking=none").tracking.enabled is False


def test_hydra_settings_keep_outputs_in_launch_dir():
    C.register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True)
    hydra = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert hydra["job"]["chdir"] is False
    assert hydra["run"]["dir"].startswith("outputs/")
    assert hydra["sweep"]["dir"].startswith("outputs/")


PYTORCH_DEFAULTS = {
    "sgd": {"lr": 0.01, "momentum": 0.0, "nesterov": False},
    "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-8},
    "adagrad": {"lr": 0.01, "eps": 1e-10},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
    "adam": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8},
    "adamax": {"lr": 0.002, "betas": [0.9, 0.999], "eps": 1e-8},
    "nadam": {"lr": 0.002, "betas": [0.9, 0.999], "eps": 1e-8, "momentum_decay": 0.004},
}


@pytest.mark.parametrize("name", sorted(PYTORCH_DEFAULTS))
def test_optimizer_defaults_and_schema(name):
    cfg = make(f"optimizer={name}")
    expected = {"name": name, "weight_decay": 0.0, **PYTORCH_DEFAULTS[name]}
    assert OmegaConf.to_container(cfg.optimizer) == expected
    assert OmegaConf.get_type(cfg.optimizer) is C.OPTIMIZER_SCHEMAS[name]
    # the three homes agree: nncore's constructor, the schema made from it, the YAML (which adds only sgd's lr)
    schema = OmegaConf.to_container(OmegaConf.structured(C.OPTIMIZER_SCHEMAS[name]))
    assert schema == {**expected, **({"lr": "???"} if name == "sgd" else {})}
    core = make_optimizer(name, lr=0.01) if name == "sgd" else make_optimizer(name)
    for key, value in expected.items():
        if key != "name":
            assert list(getattr(core, key)) == value if key == "betas" else getattr(core, key) == value, key
    yaml_text = (CONF_DIR / "optimizer" / f"{name}.yaml").read_text()
    stated = OmegaConf.create(yaml_text)
    assert set(stated) - {"defaults"} == ({"lr"} if name == "sgd" else set()), "the YAML restates a default"


def test_overrides_are_typed():
    cfg = make("optimizer=sgd", "optimizer.lr=0.5", "optimizer.nesterov=true", "optimizer.momentum=0.9",
               "model.depth=2", "model.width=16", "data.features=[a,b]")
    assert cfg.optimizer.lr == 0.5 and cfg.optimizer.nesterov is True
    assert list(cfg.data.features) == ["a", "b"]
    C.validate(cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        ["optimizer.lrr=0.1"],
        ["train.epochs=abc"],
        ["optimizer=adamw"],
        ["optimizer=sgd", "optimizer.betas=[0.9,0.9]"],
        ["optimizer=adagrad", "optimizer.momentum=0.9"],
        ["optimizer.lr=fast"],
        ["data=mnist"],
        ["data.nam=digits"],
        ["model.hidden=[a,b]"],
        ["model.width=wide"],
        ["sweep.n_trials=1.5"],
        ["sweep.sampler.nme=tpe"],
        ["tracking.enabled=maybe"],
        ["train.early_stopping.patience=soon"],
    ],
    ids=lambda o: " ".join(o),
)
def test_bad_overrides_fail_at_composition(overrides):
    with pytest.raises(ConfigCompositionException):
        make(*overrides)


# ---------------------------------------------------------------------------- validate
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=-0.1"], "optimizer.lr must be > 0, got -0.1"),
        (["optimizer.lr=0"], "optimizer.lr must be > 0, got 0.0"),
        (["model.dropout=1.0"], "model.dropout must be in [0, 1), got 1.0"),
        (["model.dropout=-0.1"], "model.dropout must be in [0, 1), got -0.1"),
        (["model.hidden=[]"], "model.hidden must not be empty"),
        (["model.hidden=[64,0]"], "model.hidden[1] must be >= 1, got 0"),
        (["model.depth=2", "model.width=0"], "model.width must be >= 1, got 0"),
        (["model.depth=-1", "model.width=8"], "model.depth must be >= 0, got -1"),
        (["train.batch_size=0"], "train.batch_size must be >= 1, got 0"),
        (["train.epochs=0"], "train.epochs must be >= 1, got 0"),
        (["train.threads=0"], "train.threads must be >= 1, got 0"),
        (["train.early_stopping.patience=-1"], "train.early_stopping.patience must be >= 0, got -1"),
        (["sweep.n_trials=0"], "sweep.n_trials must be >= 1, got 0"),
        (["sweep.n_workers=0"], "sweep.n_workers must be >= 1, got 0"),
        (["sweep.timeout=0"], "sweep.timeout must be > 0, got 0.0"),
        (["data.val_fraction=0"], "data.val_fraction must be in (0, 1), got 0.0"),
        (["data.test_fraction=1.0"], "data.test_fraction must be in (0, 1), got 1.0"),
        (["data.val_fraction=0.5", "data.test_fraction=0.5"], "data.val_fraction + data.test_fraction must be < 1"),
        (["data.name=mnist"], "data.name must be one of digits, iris, wine"),
        (["data=csv"], "data.path is required"),
        (["data=csv", "data.path=t.csv"], "data.target is required"),
        (["data=csv", "data.path=t.csv", "data.target=y", "data.task=ranking"], "data.task must be one of"),
        (["data=csv", "data.path=t.csv", "data.target=y", "data.features=[]"], "data.features must not be empty"),
        (["data=classification", "data.n_informative=30"], "data.n_informative must be <= data.n_features"),
        (["data=classification", "data.n_classes=9", "data.n_informative=3"], "data.n_classes must be <="),
        (["data=moons", "data.noise=-1"], "data.noise must be >= 0"),
        (["model.activation=swish"], "model.activation must be one of sigmoid, relu, tanh, leaky_relu; got 'swish'"),
        (["model.output=linear"], "model.output must be one of auto, softmax, sigmoid, identity; got 'linear'"),
        (["model.init=orthogonal"], "model.init must be one of auto, glorot_uniform, he_normal; got 'orthogonal'"),
        (["train.cost=hinge"], "train.cost must be one of auto, squared_error, cross_entropy; got 'hinge'"),
        (["train.dtype=float16"], "train.dtype must be one of float32, float64; got 'float16'"),
        (["sweep.sampler.name=bohb"], "sweep.sampler.name must be one of tpe, random, grid, cmaes, qmc; got 'bohb'"),
        (["sweep.pruner.name=asha"],
         "sweep.pruner.name must be one of median, percentile, hyperband, successive_halving, none; got 'asha'"),
        (["sweep.pruner.percentile=100"], "sweep.pruner.percentile must be between 0 and 100 (exclusive), got 100"),
        (["sweep.pruner.interval_steps=0"], "sweep.pruner.interval_steps must be >= 1, got 0"),
        (["sweep.pruner.min_resource=0"], "sweep.pruner.min_resource must be >= 1, got 0"),
        (["sweep.pruner.reduction_factor=1"], "sweep.pruner.reduction_factor must be >= 2, got 1"),
        (["sweep.pruner.min_early_stopping_rate=-1"], "sweep.pruner.min_early_stopping_rate must be >= 0, got -1"),
        (["sweep.objective.metrics=[val_loss]"], "sweep.objective.metrics[0] must be one of val_cost,"),
        (["sweep.objective.directions=[down]"], "sweep.objective.directions[0] must be one of minimize, maximize"),
        (
            ["sweep.objective.metrics=[val_cost,n_params]", "sweep.pruner.name=none"],
            "sweep.objective.directions must have one entry per metric (2), got ['minimize']",
        ),
        (["sweep.objective.metrics=[]", "sweep.objective.directions=[]"], "sweep.objective.metrics must not be empty"),
        (
            ["sweep.objective.metrics=[val_cost,n_params]", "sweep.objective.directions=[minimize,minimize]"],
            "sweep.pruner.name must be none with 2 objectives",
        ),
        (
            [
                "sweep.objective.metrics=[val_cost,n_params]", "sweep.objective.directions=[minimize,minimize]",
                "sweep.pruner.name=none", "sweep.sampler.name=cmaes",
            ],
            "sweep.sampler.name must not be cmaes with 2 objectives",
        ),
        (["mode=eval"], "mode must be one of sweep, train; got 'eval'"),
        (["study_name="], "study_name must not be empty"),
        (["optimizer=sgd", "optimizer.nesterov=true"], "optimizer.nesterov=True requires momentum > 0"),
        (["optimizer.betas=[0.9,1.0]"], "optimizer.betas[1] must be in [0, 1), got 1.0"),
        (["optimizer.betas=[0.9]"], "optimizer.betas must be two values in [0, 1)"),
        (["optimizer.eps=0"], "optimizer.eps must be > 0, got 0.0"),
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay must be >= 0, got -1.0"),
        (["optimizer=rmsprop", "optimizer.alpha=1.5"], "optimizer.alpha must be in [0, 1), got 1.5"),
        (["optimizer.name=sgd"], "optimizer.name must match the selected optimizer group option (AdamConfig)"),
        (["data=diabetes", "train.cost=cross_entropy"], "train.cost must not be cross_entropy for a regression"),
        (["data=diabetes", "model.output=softmax"], "model.output must not be softmax for a regression"),
        (["tracking.uri="], "tracking.uri must not be empty"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_validate_errors_name_the_key_and_value(overrides, message):
    cfg = make(*overrides)
    with pytest.raises(C.ConfigError) as info:
        C.validate(cfg)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


def test_validate_accepts_a_multi_objective_study_without_pruner():
    C.validate(make(
        "sweep.objective.metrics=[val_accuracy,n_params]",
        "sweep.objective.directions=[maximize,minimize]",
        "sweep.pruner.name=none",
    ))


def test_validate_accepts_a_csv_regression():
    C.validate(make("data=csv", "data.path=t.parquet", "data.target=y", "data.task=regression"))


def test_register_configs_is_idempotent():
    C.register_configs()
    C.register_configs()
    assert make().optimizer.name == "adam"


# ---------------------------------------------------------------------------- derived
@pytest.mark.parametrize(
    ("overrides", "widths"),
    [
        ([], [64]),
        (["model.hidden=[64,32]"], [64, 32]),
        (["model.depth=3", "model.width=16"], [16, 16, 16]),
        (["model.hidden=[64,32]", "model.depth=1", "model.width=128"], [128]),
        (["model.hidden=[64,32]", "model.width=8"], [8, 8]),
        (["model.hidden=[64,32]", "model.depth=3"], [64, 64, 64]),
        (["model.hidden=[]", "model.depth=2", "model.width=4"], [4, 4]),
    ],
)
def test_resolve_model(overrides, widths):
    cfg = make(*overrides)
    C.validate(cfg)
    assert C.resolve_model(cfg) == widths
    assert C.resolve_model(cfg.model) == widths


def test_resolve_task():
    assert C.resolve_task(make().data) == "classification"
    assert C.resolve_task(make("data=diabetes").data) == "regression"
    assert C.resolve_task(make("data=csv", "data.task=regression").data) == "regression"


def test_flatten():
    cfg = make("model.depth=2", "model.width=16", "optimizer.lr=0.01")
    flat = C.flatten(cfg)
    assert flat["model.hidden"] == "[16, 16]"
    assert flat["model.depth"] == 2 and flat["model.width"] == 16
    assert flat["optimizer.lr"] == 0.01 and flat["optimizer.name"] == "adam"
    assert flat["optimizer.betas"] == "[0.9, 0.999]"
    assert flat["train.early_stopping.patience"] == 0
    assert flat["data.path"] == "null"
    assert flat["sweep.objective.metrics"] == "[val_cost]"
    assert flat["sweep.params.optimizer.lr"] == "tag(log, interval(1e-4, 1.0))"
    assert flat["tracking.enabled"] is True
    assert all(type(v) in (str, int, float, bool) for v in flat.values())
    assert all(not isinstance(v, str) or "\n" not in v for v in flat.values())
    # every leaf of the config appears once; nothing nested is left
    assert len(flat) == len(C.flatten(OmegaConf.to_container(cfg)))
    assert list(cfg.model.hidden) == [64]  # the config itself is untouched


def test_flatten_resolves_interpolations():
    cfg = make("tracking.experiment=${study_name}-x")
    assert C.flatten(cfg)["tracking.experiment"] == "digits-default-x"
