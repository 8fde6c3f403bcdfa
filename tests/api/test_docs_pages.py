"""The API documentation pages work on a machine without internet (a new user's report:
``/docs`` and ``/redoc`` were blank, their scripts came from a CDN). Every asset a page
references is served by this server, from an installed package."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.settings import Settings

# What a page makes a browser fetch: scripts, styles, icons, images, frames, the spec.
_ASSET = re.compile(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("docs") / "runtime")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_references_nothing_outside_the_server(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # No absolute address at all: not in an attribute, not in the inline configuration
    # (Swagger UI's default validator badge is an image from a public service).
    assert not re.search(r"(?i)https?://", html), re.findall(r"(?i)https?://\S+", html)
    assets = _ASSET.findall(html)
    assert assets
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url


@pytest.mark.parametrize(("page", "script"), [("/docs", "SwaggerUIBundle"), ("/redoc", "Redoc")])
def test_every_asset_of_the_page_is_served(client, page, script):
    html = client.get(page).text
    scripts = re.findall(r"""<script[^>]*\bsrc\s*=\s*["']([^"']+)["']""", html, re.IGNORECASE)
    assert scripts, html
    for url in scripts:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "javascript" in response.headers["content-type"], url
        assert len(response.content) > 100_000  # the UI itself, not a stub
    assert any(script in client.get(url).text[:5000] for url in scripts)
    for url in _ASSET.findall(html):
        assert client.get(url).status_code == 200, url


def test_swagger_ui_styles_come_with_it(client):
    html = client.get("/docs").text
    [css] = re.findall(r"""<link[^>]*stylesheet[^>]*href\s*=\s*["']([^"']+)["']""", html)
    response = client.get(css)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")
    assert ".swagger-ui" in response.text


def test_the_pages_are_not_in_the_api_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc"} & set(paths)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_browser_may_fetch_nothing_from_outside(client, page):
    """What a bundled script adds at run time (ReDoc's side menu shows an image from
    cdn.redoc.ly) is refused by the page's Content-Security-Policy."""
    policy = client.get(page).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    for name in ("img-src", "script-src", "connect-src", "font-src", "style-src"):
        sources = directives[name].split()
        assert all(s in ("'self'", "'unsafe-inline'", "data:", "blob:") for s in sources), name
