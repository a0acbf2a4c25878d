"""The web dashboard (server-rendered pages over the services)."""
