"""Experiments: TOML configs, the ``emvi`` command, run directories, plots and reports.

Importing this package is cheap: torch, Pyro and the models load only when a name
below is first used, so the command can install its signal handling first.
"""

__all__ = ["Config", "ConfigError", "Experiment", "load"]


def __getattr__(name: str):
    if name in __all__:
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
