"""Glue between the composed Hydra config, the data, nncore, Optuna and MLflow."""
