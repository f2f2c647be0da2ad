from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from pooltender.fastapi import install  # adopting pooltender: 1 of 2

from .db import engine
from .routers import notes, status


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    await engine.dispose()


app = FastAPI(title="notes", lifespan=lifespan)
install(app, engines={"primary": engine})  # adopting pooltender: 2 of 2

api = APIRouter()
api.include_router(notes.router, prefix="/notes")
api.include_router(status.router, prefix="/status")
app.include_router(api, prefix="/api")
