import os

DATABASE_URL = os.environ.get(
    "NOTES_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/notes"
)
