"""A notes service as it was written before pooltender, in its own style (its engine in
``db.py``, a sessionmaker dependency, use cases opening their own transactions, alembic,
its own tests), then adopted: the two lines marked in ``main.py`` are the whole change.
``tests/integration/test_adopt_app.py`` runs its migrations, its own tests, and it under
overload. Its own tests are not part of this suite (``tests/conftest.py`` ignores them)."""
