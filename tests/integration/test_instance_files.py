"""A running server's files on Shardlyn's surface, through its guest agent (the fake's): a round trip through every
endpoint, paths confined to the root the caller names, limits, and the refusals for servers whose files cannot
be reached."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest

from cloudlet.images.models import ImageCapability
from tests.cloud import Cloud, wait_for
from tests.helpers import make_user
from tests.integration.test_instances import order, running


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Small limits, so that crossing them costs nothing."""
    return {"files_content_max_bytes": 64, "files_max_bytes": 256, "files_list_max": 3, "files_zip_max_files": 5}


def served(cloud: Cloud, *, agent: bool = True) -> tuple[httpx.Client, str]:
    """A client and the id of a running server whose image has the guest agent (or not)."""
    if agent:
        cloud.image_can(ImageCapability.CLOUD_INIT, ImageCapability.GUEST_AGENT, ImageCapability.SSH)
    client = cloud.client()
    server = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])
    return client, f"/v1/instances/{server['id']}/files"


def test_a_round_trip_through_every_file_endpoint(cloud: Cloud) -> None:
    client, files = served(cloud)
    made = client.post(f"{files}/mkdir", json={"path": "/srv/app"})
    assert made.status_code == 201 and made.json()["type"] == "directory", made.text
    written = client.put(f"{files}/content", json={"path": "/srv/app/index.html", "content": "<h1>hi</h1>\n"})
    assert written.status_code == 200, written.text
    assert {k: written.json()[k] for k in ("name", "path", "type", "size", "mode")} == {
        "name": "index.html", "path": "/srv/app/index.html", "type": "file", "size": 12, "mode": "0644"}
    read = client.get(f"{files}/content", params={"path": "/srv/app/index.html"}).json()
    assert (read["content"], read["encoding"], read["size"]) == ("<h1>hi</h1>\n", "utf-8", 12)
    binary = client.put(f"{files}/content", json={"path": "/srv/app/logo.bin", "content": "AAEC/w==",
                                                  "encoding": "base64"})
    assert binary.status_code == 200, binary.text
    assert client.get(f"{files}/content", params={"path": "/srv/app/logo.bin"}).json()["content"] == "AAEC/w=="
    uploaded = client.post(f"{files}/upload", data={"path": "/srv/app/static"},
                           files=[("files", ("a.css", b"body{}", "text/css")), ("files", ("b.js", b"1;", "text/js"))])
    assert uploaded.status_code == 201, uploaded.text
    assert [f["path"] for f in uploaded.json()["files"]] == ["/srv/app/static/a.css", "/srv/app/static/b.js"]
    downloaded = client.get(f"{files}/download", params={"path": "/srv/app/static/a.css"})
    assert downloaded.content == b"body{}" and "a.css" in downloaded.headers["content-disposition"]

    moved = client.post(f"{files}/move", json={"from": "/srv/app/index.html", "to": "/srv/app/home.html"})
    assert moved.status_code == 200 and moved.json()["path"] == "/srv/app/home.html", moved.text
    listing = client.get(files, params={"path": "/srv/app"}).json()
    assert [(e["name"], e["type"]) for e in listing["entries"]] == [
        ("home.html", "file"), ("logo.bin", "file"), ("static", "directory")]
    assert (listing["total"], listing["truncated"]) == (3, False)

    archive = client.get(f"{files}/download-zip", params={"path": "/srv/app"})
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert sorted(opened.namelist()) == ["home.html", "logo.bin", "static/", "static/a.css", "static/b.js"]
        assert opened.read("static/b.js") == b"1;"

    refused = client.delete(files, params={"path": "/srv/app"})
    assert refused.status_code == 409 and "recursive" in refused.json()["error"]
    assert client.delete(files, params={"path": "/srv/app", "recursive": "true"}).status_code == 204
    assert client.get(files, params={"path": "/srv/app"}).status_code == 404
    assert client.delete(files, params={"path": "/srv/app"}).status_code == 404


def test_paths_stay_under_the_root_the_caller_names(cloud: Cloud) -> None:
    client, files = served(cloud)
    client.put(f"{files}/content", json={"path": "/srv/app/conf/site.conf", "content": "x"})
    under = client.get(files, params={"root": "/srv/app", "path": "/conf"}).json()
    assert [e["path"] for e in under["entries"]] == ["/srv/app/conf/site.conf"]
    for params in ({"root": "/srv/app", "path": "../../etc/passwd"}, {"root": "/srv/app", "path": "conf/../../x"}):
        escaped = client.get(f"{files}/content", params=params)
        assert escaped.status_code == 400 and "leaves /srv/app" in escaped.json()["error"], escaped.text
    outside = client.post(f"{files}/move", json={"from": "conf", "to": "../conf", "root": "/srv/app"})
    assert outside.status_code == 400
    assert client.delete(files, params={"root": "/srv/app", "path": "/"}).status_code == 400  # the root itself
    assert client.get(files, params={"root": "/no/such/dir"}).status_code == 404
    assert client.get(files, params={"root": "relative"}).status_code == 400


def test_limits_and_bad_input_are_clear_4xx_and_write_nothing(cloud: Cloud) -> None:
    client, files = served(cloud)
    too_long = client.put(f"{files}/content", json={"path": "/big.txt", "content": "x" * 65})
    assert too_long.status_code == 413 and "at most 64" in too_long.json()["error"]
    too_big = client.post(f"{files}/upload", data={"path": "/up"}, files=[("files", ("big", b"x" * 257, "x/y"))])
    assert too_big.status_code == 413, too_big.text
    client.post(f"{files}/upload", data={"path": "/up"}, files=[("files", ("f", b"x" * 200, "x/y"))])
    assert client.get(f"{files}/content", params={"path": "/up/f"}).status_code == 413  # over 64 as JSON
    assert len(client.get(f"{files}/download", params={"path": "/up/f"}).content) == 200  # fine as a download
    for name in ("a", "b", "c"):
        client.put(f"{files}/content", json={"path": f"/many/{name}", "content": name})
    listing = client.get(files, params={"path": "/many"}).json()
    client.put(f"{files}/content", json={"path": "/many/d", "content": "d"})
    assert (listing["total"], listing["truncated"]) == (3, False)
    assert client.get(files, params={"path": "/many"}).json()["truncated"] is True
    assert client.get(f"{files}/download-zip", params={"path": "/many"}).status_code == 200
    over = client.get(f"{files}/download-zip", params={"path": "/"})  # 7 entries in all
    assert over.status_code == 413 and "more than 5 entries" in over.json()["error"]

    bad = [client.put(f"{files}/content", json={"path": "/x", "content": "!!", "encoding": "base64"}),
           client.get(files, params={"path": "/a\x00b"}),
           client.post(f"{files}/upload", data={"path": "/up"}, files=[("files", ("..", b"x", "x/y"))]),
           client.post(f"{files}/move", json={"from": "/many", "to": "/many/inner"}),
           client.get(f"{files}/content", params={"path": "/many"})]
    assert [r.status_code for r in bad] == [400, 400, 400, 400, 400], [r.text for r in bad]
    exists = client.post(f"{files}/move", json={"from": "/many/a", "to": "/many/b"})
    assert exists.status_code == 409 and "already exists" in exists.json()["error"]
    assert client.get(files, params={"path": "/"}).json()["entries"][0]["name"] == "many"  # nothing else was made
    assert client.get(f"{files}/content", params={"path": "/x"}).status_code == 404
    assert client.get(f"{files}/content", params={"path": "/big.txt"}).status_code == 404


def test_a_stopped_server_or_one_without_an_agent_answers_409_and_others_customers_404(cloud: Cloud) -> None:
    client, files = served(cloud)
    stranger = cloud.client(make_user(cloud.runtime, "eve@example.com"))
    assert stranger.get(files).status_code == 404
    server = files.split("/")[3]
    assert client.post(f"/api/instances/{server}/power/poweroff").status_code in (200, 202)
    wait_for(lambda: client.get(f"/api/instances/{server}").json()["status"] == "stopped")
    stopped = client.get(files)
    assert stopped.status_code == 409 and "is stopped" in stopped.json()["error"], stopped.text


def test_an_image_without_the_guest_agent_answers_409(cloud: Cloud) -> None:
    client, files = served(cloud, agent=False)
    refused = client.get(files)
    assert refused.status_code == 409 and "no guest agent" in refused.json()["error"], refused.text
