"""The dashboard router: the page, its packaged assets, the access rule."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from pooltender.dashboard import dashboard_router
from pooltender.dashboard.router import ASSETS
from tests.support.fake_stats import create_fake_app


def test_the_page_loads_only_packaged_assets() -> None:
    with TestClient(create_fake_app()) as client:
        page = client.get("/debug/pool")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert links
        links.remove("data:,")  # the empty favicon: no request for /favicon.ico
        for link in links:
            assert "//" not in link, link
            assert not link.startswith("/"), link
            asset = client.get(f"/debug/{link}")
            assert asset.status_code == 200, link
        assert "pool-stats" in links
        assert {f"pool/static/{name}" for name in ASSETS} - {
            "pool/static/vendor/uPlot.LICENSE"
        } <= set(links)


def test_every_asset_is_served_with_its_type() -> None:
    with TestClient(create_fake_app()) as client:
        for name, media_type in ASSETS.items():
            response = client.get(f"/debug/pool/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == media_type
            assert response.content


@pytest.mark.parametrize("name", ["page.html", "../router.py", "vendor/VERSIONS", "nope.js"])
def test_only_listed_assets_are_served(name: str) -> None:
    with TestClient(create_fake_app()) as client:
        assert client.get(f"/debug/pool/static/{name}").status_code == 404


def test_the_guard_protects_page_and_assets() -> None:
    def loopback_only(request: Request) -> None:
        if request.headers.get("x-test-allow") != "yes":
            raise HTTPException(403, "debug endpoints answer loopback clients only")

    app = FastAPI()
    app.include_router(dashboard_router(loopback_only), prefix="/debug")
    with TestClient(app) as client:
        assert client.get("/debug/pool").status_code == 403
        assert client.get("/debug/pool/static/dashboard.js").status_code == 403
        allowed = {"x-test-allow": "yes"}
        assert client.get("/debug/pool", headers=allowed).status_code == 200


def test_a_custom_path_keeps_links_relative() -> None:
    app = FastAPI()
    app.include_router(dashboard_router(path="/pools"), prefix="/ops")
    with TestClient(app) as client:
        page = client.get("/ops/pools").text
        assert 'src="pools/static/dashboard.js"' in page
        assert client.get("/ops/pools/static/dashboard.js").status_code == 200


@pytest.mark.parametrize("path", ["pool", "/pool/"])
def test_rejects_a_malformed_path(path: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        dashboard_router(path=path)


def test_the_script_never_writes_html() -> None:
    from importlib import resources

    script = resources.files("pooltender.dashboard").joinpath("static/dashboard.js").read_text()
    assert "innerHTML" not in script
    assert "outerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script
    assert "textContent" in script
