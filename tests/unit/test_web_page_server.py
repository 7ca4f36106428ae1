"""How the web chat page is served and exported (local_stack/web_page.py): the files a browser
loads, a ``config.json`` naming the stack, nothing else from the page's folder."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_stack.background import BackgroundLoop
from local_stack.connections import start_site
from local_stack.web_page import WEB_DIR, export_web_page, main, web_page_app

HTTP_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"
WS_URL = "wss://def456.execute-api.eu-west-1.amazonaws.com/prod"


def _references(directory: Path) -> set[str]:
    """Every local file the page loads: src/href in index.html, imports of its modules."""
    html = (directory / "index.html").read_text(encoding="utf-8")
    names = set(re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css))"', html))
    for module in directory.glob("*.js"):
        names |= set(re.findall(r'from "\./([\w.-]+\.js)"', module.read_text(encoding="utf-8")))
    return names


def test_the_export_is_a_complete_static_site(tmp_path: Path) -> None:
    written = export_web_page(tmp_path, WS_URL, HTTP_URL)
    names = {p.name for p in written}
    assert {"index.html", "app.js", "app.css", "chatflow.js", "config.json"} <= names
    assert "package.json" not in names
    assert _references(tmp_path) <= names, "the page loads a file the export lacks"
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    # A hosted page does not let a link point it (and the passwords typed into it) elsewhere.
    assert config == {"httpUrl": HTTP_URL, "wsUrl": WS_URL, "allowEndpointOverride": False}


def test_the_command_line_exports_and_checks_its_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert main(["--http-url", HTTP_URL + "/", "--ws-url", WS_URL, "--export", str(out)]) == 0
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["httpUrl"] == HTTP_URL
    assert str(out / "index.html") in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--http-url", "wss://wrong.example.com", "--ws-url", WS_URL, "--export", str(out)])


def test_the_server_serves_the_page_and_nothing_else() -> None:
    loop = BackgroundLoop("web-page-test")
    try:
        runner, port = loop.run(start_site(web_page_app(WS_URL, HTTP_URL), "127.0.0.1", 0))
        base = f"http://127.0.0.1:{port}"
        try:

            def get(path: str) -> tuple[int, bytes]:
                try:
                    with urllib.request.urlopen(base + path, timeout=10) as res:
                        return res.status, res.read()
                except urllib.error.HTTPError as err:
                    return err.code, b""

            status, body = get("/")
            assert status == 200
            assert body == (WEB_DIR / "index.html").read_bytes()
            for name in _references(WEB_DIR):
                assert get(f"/{name}")[0] == 200, name
            status, body = get("/config.json")
            assert json.loads(body) == {"httpUrl": HTTP_URL, "wsUrl": WS_URL, "allowEndpointOverride": True}
            for path in ("/package.json", "/../pyproject.toml", "/%2e%2e/pyproject.toml", "/nope.js"):
                assert get(path)[0] == 404, path
        finally:
            loop.run(runner.cleanup())
    finally:
        loop.close()
