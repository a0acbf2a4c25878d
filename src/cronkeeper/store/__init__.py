"""The only package that speaks SQL (SQLAlchemy 2 Core); one schema for SQLite and PostgreSQL."""
