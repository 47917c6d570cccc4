"""python run.py [overrides]: a hyperparameter study (mode=sweep, the default) or one run (mode=train).

Hydra composes the config from conf/; see `python run.py --help` and README.md.
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.cli import run
from experiments.config import register_configs

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    code = run(cfg, list(HydraConfig.get().overrides.task))
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
