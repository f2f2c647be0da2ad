from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .models import Note


class NoteNotFound(Exception):
    pass


class NoteService:
    def __init__(self, session_maker: async_sessionmaker[AsyncSession]) -> None:
        self.session_maker = session_maker

    async def create(self, title: str, body: str) -> Note:
        async with self.session_maker.begin() as session:
            note = Note(title=title, body=body)
            session.add(note)
        return note

    async def get(self, note_id: int) -> Note:
        async with self.session_maker.begin() as session:
            note = await session.get(Note, note_id)
            if note is None:
                raise NoteNotFound(note_id)
            return note

    async def list(self) -> list[Note]:
        async with self.session_maker.begin() as session:
            return list((await session.scalars(select(Note).order_by(Note.id))).all())

    async def report(self, seconds: float) -> int:
        """A slow report: holds its connection for a while."""
        async with self.session_maker.begin() as session:
            await session.execute(text("SELECT pg_sleep(:s)").bindparams(s=seconds))
            return int(await session.scalar(select(Note.id).order_by(Note.id.desc())) or 0)
