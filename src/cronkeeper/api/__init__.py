"""The HTTP API (FastAPI): a thin adapter over `cronkeeper.service`."""
