"""CKAN's action API, tried with the real ``ckanapi`` client against a live server on
localhost (issue 11 §6): ``ckanapi action`` and ``ckanapi dump datasets --all`` work
unchanged; answers have CKAN's envelope, errors CKAN's error objects and statuses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    """``uvicorn api.main:app`` over the world's lake, with a state database of its own."""
    folder = tmp_path_factory.mktemp("ckan")
    port = _free_port()
    env = {
        **os.environ,
        "GOVSHARE_HOME": str(world.home),
        "GOVSHARE_SCHEMAS_DIR": str(world.schemas_dir),
        "GOVSHARE_STATE_DB": f"sqlite:///{folder / 'state.sqlite'}",
    }
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _ckanapi(*args: str) -> subprocess.CompletedProcess:
    # On PATH, as in an activated environment: ``dump`` starts its workers as ``ckanapi``.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(BIN / "ckanapi"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_ckanapi_searches_and_shows(server, contracts):
    found = _ckanapi("action", "package_search", "-r", server, "q=人口", "rows=5")
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    assert result["count"] >= 1 and result["results"][0]["name"] == "population"
    shown = _ckanapi("action", "package_show", "-r", server, "id=legal_persons")
    package = json.loads(shown.stdout)
    meta = contracts["legal_persons"].catalog
    assert package["title"] == meta.name and package["notes"] == meta.summary
    assert package["organization"]["title"] == meta.provider.name
    assert {t["name"] for t in package["tags"]} == set(meta.keywords)
    extras = {e["key"]: e["value"] for e in package["extras"]}
    assert extras["resource_code"] == meta.resource_code
    assert extras["sharing_type"] == meta.sharing.type
    listed = json.loads(_ckanapi("action", "package_list", "-r", server).stdout)
    assert listed == sorted(contracts)


def test_ckanapi_dumps_every_dataset(server, contracts, tmp_path):
    out = tmp_path / "datasets.jsonl"
    dumped = _ckanapi("dump", "datasets", "--all", "-r", server, "-O", str(out), "-q")
    assert dumped.returncode == 0, dumped.stderr
    packages = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(p["name"] for p in packages) == sorted(contracts)
    for package in packages:
        assert package["num_resources"] == len(package["resources"]) >= 1


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("package_show?id=nope", 404, "Not Found Error"),
        ("package_search?rows=-1", 409, "Validation Error"),
        ("package_search?rows=x", 409, "Validation Error"),
        ("package_search?rows=true", 409, "Validation Error"),
        ("package_search?rows=1.5", 409, "Validation Error"),
        # CKAN answers a search it cannot parse with 400 "Search Query Error".
        ("package_search?fq=color:red", 400, "Search Query Error"),
        ("package_search?fq=%22unclosed", 400, "Search Query Error"),
        ("package_search?sort=popularity%20desc", 400, "Search Query Error"),
        ("package_search?sort=name%20asc,%20bogus", 400, "Search Query Error"),
        ("package_search?facet.field=%5Bbad", 409, "Validation Error"),
        ("package_show", 409, "Validation Error"),
        ("no_such_action", 400, "Bad request"),
    ],
)
def test_bad_calls_get_ckan_errors(server, path, status, error):
    answer = httpx.get(f"{server}/api/3/action/{path}")
    assert answer.status_code == status
    body = answer.json()
    assert body["success"] is False and body["error"]["__type"] == error
    assert body["help"].endswith(path.split("?")[0])


@pytest.mark.parametrize(
    "body",
    [
        b'{"rows": 1e400}',
        b'{"start": -1e400}',
        b'{"rows": true}',
        b'{"\\ud800": 1}',
        b'{"sort": "name asc, \\ud800"}',
        b'{"q": "\\udfff"}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"facet.field": "' + b"[" * 3000 + b'"}',
    ],
)
def test_odd_bodies_get_ckan_errors_never_a_500(server, body):
    answer = httpx.post(f"{server}/api/3/action/package_search", content=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["success"] is False


def test_rows_beyond_the_maximum_are_capped_like_ckan(server, contracts):
    result = httpx.get(f"{server}/api/3/action/package_search?rows=5000").json()["result"]
    assert result["count"] == len(contracts) == len(result["results"])


def test_post_and_both_prefixes_answer_alike(server):
    by_get = httpx.get(f"{server}/api/3/action/package_search", params={"q": "licences"})
    by_post = httpx.post(f"{server}/api/action/package_search", json={"q": "licences"})
    assert by_get.json()["result"] == by_post.json()["result"]
    assert by_get.json()["result"]["results"][0]["name"] == "licences"
    faceted = httpx.get(
        f"{server}/api/3/action/package_search",
        params={"fq": "sharing_type:conditional", "facet.field": '["organization","groups"]'},
    ).json()["result"]
    assert all(
        {e["key"]: e["value"] for e in p["extras"]}["sharing_type"] == "conditional"
        for p in faceted["results"]
    )
    counts = faceted["search_facets"]["organization"]["items"]
    assert sum(item["count"] for item in counts) == faceted["count"]
    refused = httpx.post(f"{server}/api/3/action/package_list", content=b"not json")
    assert refused.status_code == 400 and refused.json()["success"] is False
    upper = httpx.get(
        f"{server}/api/3/action/package_search",
        params={"fq": f"organization:{counts[0]['name'].upper()}"},
    ).json()["result"]
    assert upper["count"] == counts[0]["count"]  # organization names match in any case
    dumped = _ckanapi("dump", "groups", "--all", "-r", server, "-q")
    assert dumped.returncode == 0, dumped.stderr
