"""The demo service (the app of ``pooltender demo``) at module level, for uvicorn in a
subprocess (``Service(env, app="tests.apps.demo:app")``). Like the command it runs on
SQLite files in ``POOLTENDER_DEMO_DIR`` unless ``DATABASE_URL`` is set."""

from __future__ import annotations

from pooltender_demo import create_app

app = create_app()
