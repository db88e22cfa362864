"""Persistent state of the HTTP service: profiles, specs, results and jobs.

SQLAlchemy 2 (SQLite by default, PostgreSQL by URL) with Alembic migrations
shipped in the package and applied at start-up.  Nothing here imports
FastAPI: the store can be used by tools and tests on its own.
"""
