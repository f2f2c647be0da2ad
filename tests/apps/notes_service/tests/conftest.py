from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from notes.db import engine, session_maker
from notes.main import app
from notes.models import Note
from sqlalchemy import text


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    await engine.dispose()


@pytest.fixture
async def seeded() -> AsyncIterator[list[int]]:
    """Two notes, written with the app's own session maker."""
    async with session_maker.begin() as session:
        await session.execute(text("TRUNCATE notes RESTART IDENTITY"))
        notes = [Note(title="first", body="a"), Note(title="second", body="b")]
        session.add_all(notes)
    yield [n.id for n in notes]
    await engine.dispose()
