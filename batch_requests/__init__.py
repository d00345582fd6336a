"""Batch many HTTP requests to a Django site into one round trip."""

__version__ = "1.0.0.dev0"
