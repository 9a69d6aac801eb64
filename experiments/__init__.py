"""Experiments: TOML configs, the ``emvi`` command, run directories, plots and reports."""

from .config import Config, ConfigError, Experiment, load

__all__ = ["Config", "ConfigError", "Experiment", "load"]
