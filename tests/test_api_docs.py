"""The API's docs page works without internet: ``/v1/docs`` is Swagger UI whose assets
the API serves itself, from the installed ``fastapi-offline`` package."""

from __future__ import annotations

import re

from conftest import RunningApi


async def test_the_docs_page_names_no_other_host_and_its_assets_are_served(
    running_api: RunningApi,
) -> None:
    """The page links a stylesheet, an icon and Swagger UI's script by paths on the API
    itself (no CDN, no other host), each is served, the script is Swagger UI 5 (which
    reads the OpenAPI 3.1 document FastAPI writes), and the page loads that document."""
    page = await running_api.http.get("/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "//" not in re.sub(r"<!--.*?-->", "", page.text), "the page names another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3, page.text
    for path in assets:
        assert path.startswith("/v1/docs/assets/"), path
        served = await running_api.http.get(path)
        assert served.status_code == 200 and served.content, path
    script = await running_api.http.get("/v1/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert re.search(rb'PACKAGE_VERSION:"5\.\d+\.\d+"', script.content)
    (document,) = re.findall(r"url: '([^']+)'", page.text)
    spec = await running_api.http.get(document)
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.1")
    missing = await running_api.http.get("/v1/docs/assets/nothing-here.js")
    assert missing.status_code == 404
