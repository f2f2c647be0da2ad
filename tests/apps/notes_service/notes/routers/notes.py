from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db import get_db, get_session_maker
from ..models import Note
from ..usecases import NoteNotFound, NoteService

router = APIRouter(tags=["notes"])


class NoteIn(BaseModel):
    title: str
    body: str = ""


class NoteOut(BaseModel):
    id: int
    title: str
    body: str


def note_service(
    maker: async_sessionmaker[AsyncSession] = Depends(get_session_maker),
) -> NoteService:
    return NoteService(maker)


@router.post("", status_code=201, response_model=NoteOut)
async def create_note(note: NoteIn, service: NoteService = Depends(note_service)) -> Note:
    return await service.create(note.title, note.body)


@router.get("", response_model=list[NoteOut])
async def list_notes(service: NoteService = Depends(note_service)) -> list[Note]:
    return await service.list()


@router.get("/count")
async def count_notes(db: AsyncSession = Depends(get_db)) -> dict[str, int]:
    return {"count": int(await db.scalar(select(func.count()).select_from(Note)) or 0)}


@router.get("/report")
async def report(
    seconds: float = 0.5, service: NoteService = Depends(note_service)
) -> dict[str, int]:
    return {"last": await service.report(seconds)}


@router.get("/{note_id}", response_model=NoteOut)
async def get_note(note_id: int, service: NoteService = Depends(note_service)) -> Note:
    try:
        return await service.get(note_id)
    except NoteNotFound:
        raise HTTPException(404, "note not found") from None
