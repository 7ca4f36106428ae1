"""The web chat page (local_stack/web) for any Chatflow stack: served, or exported for a static host.

``make dev`` serves it next to the local gateway. For a deployed stack (AWS, LocalStack)::

    python -m local_stack.web_page --http-url https://abc.execute-api.eu-west-1.amazonaws.com \\
        --ws-url wss://def.execute-api.eu-west-1.amazonaws.com/prod            # serve on :8080
    python -m local_stack.web_page --http-url ... --ws-url ... --export site/  # static files

The export is the page's files, the JavaScript client (``chatflow.js``) and a ``config.json`` naming
the stack; copy it to any static host (S3 + CloudFront, nginx). No build step. docs/web-chat.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent / "web"
#: The JavaScript client the page imports (``/chatflow.js``): one file, served as it is.
JS_CLIENT = Path(__file__).resolve().parents[1] / "clients" / "js" / "chatflow.js"
#: What a browser loads; anything else in WEB_DIR (package.json for Node's tests) is not served.
PAGE_SUFFIXES = (".html", ".css", ".js")


def page_files() -> dict[str, Path]:
    """The page as served: URL name -> file (the page's own files and the JavaScript client)."""
    files = {p.name: p for p in sorted(WEB_DIR.iterdir()) if p.is_file() and p.suffix in PAGE_SUFFIXES}
    files["chatflow.js"] = JS_CLIENT
    return files


def page_config(ws_url: str, http_url: str, *, allow_endpoint_override: bool) -> dict[str, object]:
    """The page's ``config.json``: where its APIs are, and whether its user may point it
    elsewhere (``?http=&ws=`` or the sign-in screen's "Server"; a password typed into the page
    goes there, so a production host says no)."""
    return {"httpUrl": http_url, "wsUrl": ws_url, "allowEndpointOverride": allow_endpoint_override}


def web_page_app(ws_url: str, http_url: str, *, allow_endpoint_override: bool = True) -> web.Application:
    """The chat page, the JavaScript client it imports, and ``/config.json`` naming the APIs it
    talks to (any target: the local gateway, LocalStack or AWS)."""
    app = web.Application()
    config = page_config(ws_url, http_url, allow_endpoint_override=allow_endpoint_override)
    files = page_files()

    async def config_json(_: web.Request) -> web.Response:
        return web.json_response(config, headers={"Cache-Control": "no-cache"})

    async def page_file(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info.get("name") or "index.html")
        if path is None or not path.exists():
            raise web.HTTPNotFound(text="not found\n")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/config.json", config_json)
    app.router.add_get("/", page_file)
    app.router.add_get("/{name}", page_file)
    return app


def export_web_page(
    directory: Path, ws_url: str, http_url: str, *, allow_endpoint_override: bool = False
) -> list[Path]:
    """Write the page, the client and ``config.json`` into ``directory``; returns what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, source in page_files().items():
        shutil.copyfile(source, directory / name)
        written.append(directory / name)
    config = page_config(ws_url, http_url, allow_endpoint_override=allow_endpoint_override)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    written.append(directory / "config.json")
    return written


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise argparse.ArgumentTypeError(f"expected a {' or '.join(s + '://' for s in schemes)} URL")
        return value.rstrip("/")

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack.web_page", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--http-url", required=True, type=_url(("http", "https")), help="the HTTP API")
    parser.add_argument(
        "--ws-url", required=True, type=_url(("ws", "wss")), help="the WebSocket API (with the stage)"
    )
    parser.add_argument("--export", type=Path, metavar="DIR", help="write static files instead of serving")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--allow-endpoint-override",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let the page's user point it at another stack (default: yes when serving, no when exporting)",
    )
    return parser.parse_args(argv)


async def _serve(app: web.Application, host: str, port: int) -> None:
    from local_stack.connections import start_site

    runner, bound = await start_site(app, host, port)
    print(f"Web chat page   http://{host}:{bound}/   (Ctrl-C stops it)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.export:
        allow = bool(args.allow_endpoint_override)
        for path in export_web_page(args.export, args.ws_url, args.http_url, allow_endpoint_override=allow):
            print(path)
        return 0
    allow = True if args.allow_endpoint_override is None else args.allow_endpoint_override
    app = web_page_app(args.ws_url, args.http_url, allow_endpoint_override=allow)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(app, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
