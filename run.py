"""python run.py [overrides]: a hyperparameter study (mode=sweep, the default) or one run (mode=train).

Hydra composes the config from conf/; see `python run.py --help` and README.md.
"""

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments import composition
from experiments.config import SCHEMA_PREFIX, register_configs
from experiments.urls import mask_password

register_configs()


def app_config_groups() -> str:
    """``group: option, ...`` a line per config group, as Hydra's help lists them, minus the schemas."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    groups = [g for g in loader.list_groups("") if g != "hydra" and composition.real_options(g)]
    return "\n".join(f"{g}: {', '.join(composition.real_options(g))}" for g in sorted(groups))


OmegaConf.register_new_resolver("app_config_groups", app_config_groups, replace=True)
USER_FULL_ERROR = os.environ.get("HYDRA_FULL_ERROR")  # the user's wish: Hydra's own multi-line reports


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    _restore_full_error()  # composed: errors of the run itself get Hydra's usual report
    overrides = list(HydraConfig.get().overrides.task)
    _refuse_schemas(HydraConfig.get().runtime.choices)
    sweeping = cfg.mode == "sweep" and not cfg.get("replay")
    ahead = composition.CheckAhead(cfg, overrides) if sweeping else None
    from experiments.cli import run  # ~1 s of imports, while the space is checked in a process of its own

    _mask_saved_config()
    try:
        code = run(cfg, overrides, ahead)
    finally:
        if ahead is not None:
            ahead.close()
    if sweeping and cfg.findings.experiment is not None and code in (0, 1):
        code = findings_after_sweep(cfg) or code  # the study ran (some trials may have failed): its findings
    if code:
        sys.exit(code)


def findings_after_sweep(cfg: DictConfig) -> int:
    """The folklore experiment's findings (``analysis.folklore``) from the finished study; exit code.
    Here, not in ``experiments``: the sweep never imports the analysis that reads what it stored."""
    from analysis.folklore import FindingsError, run_findings

    print(f"\nfindings of experiment {cfg.findings.experiment}:")
    try:
        folder = run_findings(cfg)
    except FindingsError as err:
        print(f"error: findings: {mask_password(str(err).splitlines()[0])}", file=sys.stderr)
        return 1
    print(f"findings: {folder}/findings.md (and .csv, figures); logged to the study's parent run under findings/")
    return 0


def _refuse_schemas(choices) -> None:
    """A schema chosen as a group option (``optimizer=base_sgd``) is no option: exit 2 naming it."""
    for group, option in choices.items():
        if option is not None and str(option).startswith(SCHEMA_PREFIX) and not group.startswith("hydra"):
            options = ", ".join(composition.real_options(group))
            print(f"error: {group}={option} is a schema, not an option; available options: {options}",
                  file=sys.stderr)
            sys.exit(2)


def _restore_full_error() -> None:
    if USER_FULL_ERROR is None:
        os.environ.pop("HYDRA_FULL_ERROR", None)
    else:
        os.environ["HYDRA_FULL_ERROR"] = USER_FULL_ERROR


def _mask_saved_config() -> None:
    """Passwords in URLs (``postgresql://user:secret@host``) masked in the files Hydra saved in the
    run's output dir (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``)."""
    hydra_cfg = HydraConfig.get()
    if not hydra_cfg.output_subdir:
        return
    folder = os.path.join(hydra_cfg.runtime.output_dir, hydra_cfg.output_subdir)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        path = os.path.join(folder, name)
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            continue
        masked = mask_password(text)
        if masked != text:
            with open(path, "w") as handle:
                handle.write(masked)


def composition_error(err: Exception) -> str:
    """Hydra's report of a config that does not compose, in one line naming the key or option and the value."""
    if isinstance(err, MissingConfigException) and err.options is not None:
        first = str(err).strip().splitlines()[0]
        options = [o for o in err.options if not o.startswith("base_")]
        return f"{first}; available options: {', '.join(options)}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        lines.insert(1, str(cause).strip().splitlines()[0])
    text = " ".join(line if line.endswith((".", ":")) else line + ";" for line in lines[:3]).rstrip(";")
    override = getattr(err, "override", None)  # a parse error names the override apart from its message
    if isinstance(override, str) and override not in text:
        text = f"{override}: {text}"
    return mask_password(text or type(err).__name__)


def accept_plus_experiment(argv: list[str]) -> list[str]:
    """``+experiment=NAME`` as ``experiment=NAME``: the defaults list has an ``experiment`` slot, so
    Hydra 1.3 would refuse the ``+`` form that Hydra's docs use for presets."""
    return [arg[1:] if arg.startswith("+experiment=") else arg for arg in argv]


if __name__ == "__main__":
    sys.argv = accept_plus_experiment(sys.argv)
    if USER_FULL_ERROR is None:
        os.environ["HYDRA_FULL_ERROR"] = "1"  # composition errors reach the handler below, not Hydra's printer
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C while starting up (the trials, once they run, handle it themselves)
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(130)
    except (HydraException, OmegaConfBaseException) as err:
        if USER_FULL_ERROR is not None or os.environ.get("HYDRA_FULL_ERROR") != "1":
            raise
        print(f"error: {composition_error(err)}", file=sys.stderr)
        sys.exit(2)
