"""Cronkeeper: a self-hosted cron runtime and run ledger."""

__version__ = "0.1.0"

__all__ = ["__version__"]
