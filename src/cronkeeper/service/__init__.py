"""Use cases shared by the API, CLI and dashboard; each opens exactly one transaction."""
