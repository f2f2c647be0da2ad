from httpx import AsyncClient


async def test_list_the_seeded_notes(seeded: list[int], client: AsyncClient) -> None:
    response = await client.get("/api/notes")
    assert response.status_code == 200
    assert [n["title"] for n in response.json()] == ["first", "second"]


async def test_create_then_get(seeded: list[int], client: AsyncClient) -> None:
    created = await client.post("/api/notes", json={"title": "third", "body": "c"})
    assert created.status_code == 201
    note_id = created.json()["id"]
    got = await client.get(f"/api/notes/{note_id}")
    assert got.json() == {"id": note_id, "title": "third", "body": "c"}
    assert (await client.get("/api/notes/count")).json() == {"count": 3}


async def test_a_missing_note_is_404(seeded: list[int], client: AsyncClient) -> None:
    assert (await client.get("/api/notes/999")).status_code == 404


async def test_ready(client: AsyncClient) -> None:
    assert (await client.get("/api/status/ready")).json() == {"status": "ok"}


async def test_report(seeded: list[int], client: AsyncClient) -> None:
    assert (await client.get("/api/notes/report?seconds=0.01")).json() == {"last": seeded[-1]}
