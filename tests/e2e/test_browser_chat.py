"""The web chat page (local_stack/web) end to end in headless Chromium, two users, real handlers.

Target: ``CHATFLOW_WEB_URL`` (a running ``make dev``'s page) when set; otherwise the e2e suite's
target (tests/e2e/conftest.py: the local gateway with every catalog function on this run's
database and Redis prefix, or ``CHATFLOW_WS_URL`` / ``CHATFLOW_HTTP_URL``) with the page served
from local_stack/web on an ephemeral port. The browser is Debian's ``chromium`` +
``chromium-driver`` driven by selenium; ``scripts/ensure-browser.sh`` (part of ``make test``)
installs them. Without them the test skips locally, and fails as root / in CI where they can be
installed.

Flow: alice registers and creates a room; 45 older messages are seeded as alice with the Python
client; bob registers and joins by room id; bob's page loads the latest page of history and older
pages as he scrolls up; bob's typing shows on alice's page; messages each way arrive live and are
acked, and markup in a body is shown as text (never parsed or run); bob edits and deletes a
message and alice's page follows; bob signs out and in again and alice sees him offline, then
online; bob's socket drops and what alice sends meanwhile reaches him through resume; bob reloads
and the session and room are restored. With the test's own gateway, the chat's events are checked
to have reached the notifications and analytics functions through the local EventBridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
WAIT_S = 30.0
SEEDED = 45
PASSWORD = "correct horse battery"  # the test's own throwaway users


def _browser_available() -> str | None:
    """None when Chromium and its driver are usable, else why not."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        return (
            f"missing {', '.join(missing)}: run scripts/ensure-browser.sh (installs chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -r requirements-dev.txt"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = _browser_available()
    if reason is None:
        return
    must_run = bool(os.environ.get("CI")) or (hasattr(os, "geteuid") and os.geteuid() == 0)
    if must_run:
        pytest.fail(f"headless Chromium is required here: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def serve_web_page(ws_url: str, http_url: str) -> Iterator[str]:
    """Serve local_stack/web (and the JavaScript client it imports) plus a ``config.json`` naming
    the target's URLs, on an ephemeral port (the page then talks to that target cross-origin, as it
    would from any static host)."""
    from local_stack.background import BackgroundLoop
    from local_stack.connections import start_site
    from local_stack.gateway import web_page_app

    app = web_page_app(ws_url, http_url)
    loop = BackgroundLoop("web-page")
    try:
        runner, port = loop.run(start_site(app, "127.0.0.1", 0))
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            loop.run(runner.cleanup())
    finally:
        loop.close()


@pytest.fixture(scope="module")
def local_gateway(browser_ready: None, request: pytest.FixtureRequest) -> Any:
    """The e2e suite's local gateway (tests/e2e/conftest.py), None for a remote target."""
    if os.environ.get("CHATFLOW_WEB_URL"):
        return None
    return request.getfixturevalue("e2e_target").gateway


@pytest.fixture(scope="module")
def web_url(browser_ready: None, request: pytest.FixtureRequest) -> Iterator[str]:
    """``CHATFLOW_WEB_URL`` when set (e.g. ``make dev``'s page); else the page served here for the
    e2e suite's target (the local gateway, or CHATFLOW_WS_URL / CHATFLOW_HTTP_URL)."""
    external = os.environ.get("CHATFLOW_WEB_URL")
    if external:
        yield external
        return
    target = request.getfixturevalue("e2e_target")
    with serve_web_page(target.ws_url, target.http_url) as url:
        yield url


@pytest.fixture
def new_browser(
    browser_ready: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Any]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[tuple[str, Any]] = []

    def make(name: str) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1100,760",
            f"--user-data-dir={tmp_path / f'profile-{name}'}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        driver.set_page_load_timeout(WAIT_S)
        drivers.append((name, driver))
        return driver

    yield make
    # Screenshots of the final state help when a wait fails (kept in pytest's tmp_path, or
    # BROWSER_SCREENSHOTS=dir).
    shots = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path)
    for name, driver in drivers:
        with contextlib.suppress(Exception):
            shots.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(shots / f"{request.node.name}-{name}.png"))
        with contextlib.suppress(Exception):
            driver.quit()


class ChatPage:
    """What a user does on the page, by element ids (local_stack/web/index.html)."""

    def __init__(self, driver: Any, url: str) -> None:
        self.driver = driver
        self.url = url

    def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = WAIT_S) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition, message=what)

    def find(self, element_id: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def texts(self, css: str) -> list[str]:
        """textContent of every match, read in one script (the page re-renders lists wholesale,
        so element handles can go stale between finding and reading them)."""
        found: list[str] = self.driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", css
        )
        return found

    def open(self) -> None:
        self.driver.get(self.url)
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready") == "true", "page ready")

    def register(self, handle: str) -> None:
        self.find("auth-handle").send_keys(handle)
        self.find("auth-password").send_keys(PASSWORD)
        self.find("register-btn").click()
        self.wait(lambda d: self.find("chat-view").is_displayed(), f"{handle} signed in")
        self.wait_online()

    def login(self, handle: str) -> None:
        self.find("auth-handle").clear()
        self.find("auth-handle").send_keys(handle)
        self.find("auth-password").send_keys(PASSWORD)
        self.find("login-btn").click()
        self.wait(lambda d: self.find("chat-view").is_displayed(), f"{handle} signed in")
        self.wait_online()

    def wait_online(self) -> None:
        self.wait(
            lambda d: self.find("conn-status").get_attribute("data-state") == "online", "WebSocket online"
        )

    def create_room(self, name: str) -> str:
        self.find("new-room-name").send_keys(name)
        self.find("create-room-btn").click()
        self.wait(lambda d: self.find("room-title").text == name, f"room {name} open")
        room_id: str = self.find("room-id").text
        return room_id

    def join_room(self, room_id: str, name: str) -> None:
        self.find("join-room-id").send_keys(room_id)
        self.find("join-room-btn").click()
        self.wait(lambda d: self.find("room-title").text == name, f"joined {name}")

    def bodies(self) -> list[str]:
        return self.texts("#message-list .message .body")

    def wait_for_message(self, body: str) -> None:
        self.wait(lambda d: body in self.bodies(), f"message {body!r} shown")

    def send(self, body: str) -> None:
        self.find("message-input").send_keys(body)
        self.find("send-btn").click()
        # Acked: the item carries the server's sequence number, no longer "pending".
        self.wait(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('#message-list .message:not(.pending)[data-seq]')]"
                ".some(li => li.querySelector('.body').textContent === arguments[0])",
                body,
            ),
            f"{body!r} acked",
        )

    def click_own_message_action(self, body: str, action: str, prompt_answer: str | None = None) -> None:
        """Click "edit"/"delete" on one's own message (the page asks via prompt/confirm)."""
        self.driver.execute_script(
            """
            window.confirm = () => true;
            window.prompt = () => arguments[2];
            const li = [...document.querySelectorAll('#message-list .message')]
              .find(m => m.querySelector('.body').textContent === arguments[0]);
            li.querySelector('button.' + arguments[1]).click();
            """,
            body,
            action,
            prompt_answer,
        )

    def session(self) -> dict[str, Any]:
        raw = self.driver.execute_script("return sessionStorage.getItem('chatflow.session')")
        data: dict[str, Any] = json.loads(raw)
        return data

    def scroll_history_to_top(self) -> bool:
        """Scroll the message pane to the top (loads older history); True once 'seed 1' shows."""
        self.driver.execute_script("document.getElementById('messages').scrollTop = 0")
        return "seed 1" in self.bodies()


def _api_urls(page: ChatPage) -> tuple[str, str]:
    """The page's target: ``(httpUrl, wsUrl)`` from its config.json."""
    cfg = page.driver.execute_script(
        "return fetch('config.json').then(r => r.ok ? r.json() : {}).catch(() => ({}))"
    )
    if not isinstance(cfg, dict) or not cfg.get("wsUrl") or not cfg.get("httpUrl"):
        pytest.fail(f"the page's config.json names no httpUrl/wsUrl: {cfg}")
    return str(cfg["httpUrl"]), str(cfg["wsUrl"])


def _seed_messages(page: ChatPage, room_id: str, count: int) -> None:
    """Send ``count`` messages as the page's user with the project's Python client (its own
    connection; it paces itself on rate limits)."""
    import asyncio

    from chatflow_client import ChatClient

    http_url, ws_url = _api_urls(page)
    session = page.session()

    async def seed() -> None:
        async with ChatClient(http_url, ws_url) as chat:
            # The access token only: refreshing here would rotate the page's refresh token.
            chat.api.use_session(session["accessToken"])
            await chat.connect()
            sends = [chat.enqueue(room_id, f"seed {n}") for n in range(1, count + 1)]
            for sent in sends:
                await sent

    asyncio.run(asyncio.wait_for(seed(), WAIT_S * 4))


def test_two_users_chat_in_the_browser(
    web_url: str, new_browser: Callable[[str], Any], local_gateway: Any
) -> None:
    tag = secrets.token_hex(3)
    alice_handle, bob_handle = f"alice_{tag}", f"bob_{tag}"
    room_name = f"lobby {tag}"

    alice = ChatPage(new_browser("alice"), web_url)
    alice.open()
    alice.register(alice_handle)
    room_id = alice.create_room(room_name)

    _seed_messages(alice, room_id, SEEDED)
    alice.wait_for_message(f"seed {SEEDED}")  # her page got them live (another connection of hers)

    bob = ChatPage(new_browser("bob"), web_url)
    bob.open()
    bob.register(bob_handle)
    bob.join_room(room_id, room_name)

    # History: the latest page first, older pages as bob scrolls up (keyset, ?before=).
    bob.wait_for_message(f"seed {SEEDED}")
    assert "seed 1" not in bob.bodies()
    bob.wait(
        lambda d: bob.scroll_history_to_top() or "seed 1" in bob.bodies(),
        "older history loaded on scroll",
    )
    seeded = [b for b in bob.bodies() if b.startswith("seed ")]
    assert seeded == [f"seed {n}" for n in range(1, SEEDED + 1)]  # in order, no gaps, no duplicates
    bob.wait(lambda d: "Beginning" in bob.find("history-status").text, "history exhausted")

    # Typing: bob types, alice sees the indicator.
    bob.find("message-input").send_keys("hel")
    alice.wait(lambda d: f"{bob_handle} is typing" in alice.find("typing-indicator").text, "typing shown")

    # Live messages both ways, with acks.
    bob.find("message-input").clear()
    bob.send(f"hello from {bob_handle}")
    alice.wait_for_message(f"hello from {bob_handle}")
    alice.wait(lambda d: not alice.find("typing-indicator").text, "typing cleared by the message")
    alice.send(f"hi {bob_handle}, {alice_handle} here")
    bob.wait_for_message(f"hi {bob_handle}, {alice_handle} here")

    # User text is rendered as text: markup in a body shows literally and never runs.
    markup = '<img src="x" onerror="window.__xss = 1"><b>bold?</b>'
    alice.send(markup)
    bob.wait_for_message(markup)
    for page in (alice, bob):
        assert (
            page.driver.execute_script(
                "return document.querySelectorAll('#message-list .body *').length"
                " + (window.__xss === undefined ? 0 : 1)"
            )
            == 0
        )

    # Edit and delete own messages: the change reaches the other page live.
    bob.send("oops, wrong room")
    alice.wait_for_message("oops, wrong room")
    bob.click_own_message_action("oops, wrong room", "edit", prompt_answer="right room after all")
    alice.wait_for_message("right room after all")
    assert "oops, wrong room" not in alice.bodies()
    bob.click_own_message_action("right room after all", "delete")
    alice.wait(
        lambda d: "right room after all" not in alice.bodies() and "message deleted" in alice.bodies(),
        "deletion shown live",
    )

    # Presence: bob signs out (his only socket closes) and back in; alice sees him go and come back.
    bob.find("logout").click()
    bob.wait(lambda d: bob.find("auth-view").is_displayed(), "bob signed out")
    alice.wait(lambda d: bob_handle in alice.texts("#presence .user:not(.online)"), "bob shown offline")
    bob.login(bob_handle)
    bob.wait(lambda d: bob.find("room-title").text == room_name, "room reopened after sign-in")
    alice.wait(lambda d: bob_handle in alice.texts("#presence .user.online"), "bob shown online")

    # Reconnect + resume: bob's socket drops (held down for a while); what alice sends meanwhile
    # reaches bob's page through resume once it reconnects, exactly once.
    bob.driver.execute_script("window.chatflowTest.dropConnection(arguments[0])", 3000)
    bob.wait(
        lambda d: bob.find("conn-status").get_attribute("data-state") != "online", "bob's socket dropped"
    )
    alice.send("while bob was away")
    bob.wait_online()
    bob.wait_for_message("while bob was away")
    assert bob.bodies().count("while bob was away") == 1

    # Reload: the session and the open room survive; live delivery continues on the new socket.
    bob.driver.refresh()
    bob.wait(lambda d: d.execute_script("return document.body.dataset.ready") == "true", "reloaded")
    bob.wait_online()
    bob.wait(lambda d: bob.find("room-title").text == room_name, "room restored after reload")
    bob.wait_for_message("while bob was away")
    alice.send("after the reload")
    bob.wait_for_message("after the reload")
    assert bob.bodies().count("after the reload") == 1

    if local_gateway is not None:
        _assert_events_reached_their_targets(local_gateway.gateway.bus, f"hello from {bob_handle}")


def test_rapid_sends_keep_the_order_typed_for_sender_and_recipient(
    web_url: str, new_browser: Callable[[str], Any]
) -> None:
    """Issue 9: the server processes one connection's frames concurrently, so the page must not
    have two sends in flight in one room. Ten messages submitted back to back (one script, faster
    than anyone types) are stored, and shown on both pages, in the order typed."""
    tag = secrets.token_hex(3)
    room_name = f"rapid {tag}"
    alice = ChatPage(new_browser("alice"), web_url)
    alice.open()
    alice.register(f"alice_{tag}")
    room_id = alice.create_room(room_name)
    bob = ChatPage(new_browser("bob"), web_url)
    bob.open()
    bob.register(f"bob_{tag}")
    bob.join_room(room_id, room_name)

    typed = [f"quick {i}" for i in range(10)]
    alice.driver.execute_script(
        """
        const input = document.getElementById('message-input');
        const form = document.getElementById('composer');
        for (const body of arguments[0]) { input.value = body; form.requestSubmit(); }
        """,
        typed,
    )

    def stored(page: ChatPage) -> list[tuple[int, str]]:
        rows: list[list[Any]] = page.driver.execute_script(
            "return [...document.querySelectorAll('#message-list .message:not(.pending)[data-seq]')]"
            ".map(li => [Number(li.dataset.seq), li.querySelector('.body').textContent])"
        )
        return [(int(seq), str(body)) for seq, body in rows if str(body).startswith("quick ")]

    for page in (alice, bob):

        def all_shown(_: Any, page: ChatPage = page) -> bool:
            return len(stored(page)) == len(typed)

        page.wait(all_shown, f"{len(typed)} messages stored and shown")
        shown = stored(page)
        assert [body for _, body in shown] == typed
        assert [seq for seq, _ in shown] == sorted(seq for seq, _ in shown)


def _assert_events_reached_their_targets(bus: Any, body: str) -> None:
    """The chat's domain events went through the local EventBridge (outbox -> PutEvents -> rules)
    to the notifications and analytics functions, with nothing dead-lettered."""
    import time

    def delivered_targets() -> set[str]:
        created = [
            e["id"]
            for e in bus.archived()
            if e["detail-type"] == "message.created" and e["detail"].get("body") == body
        ]
        return {target for _, target, event_id in bus.delivered() if created and event_id == created[0]}

    deadline = time.monotonic() + WAIT_S
    while not {"notifications", "analytics"} <= delivered_targets() and time.monotonic() < deadline:
        time.sleep(0.1)  # waiting for asynchronous delivery, not measuring it
    assert {"notifications", "analytics"} <= delivered_targets(), bus.dead_letters()
    assert bus.dead_letters() == []


def test_sign_in_errors_are_shown_not_swallowed(web_url: str, new_browser: Callable[[str], Any]) -> None:
    page = ChatPage(new_browser("carol"), web_url)
    page.open()
    page.find("auth-handle").send_keys("c")
    page.find("auth-password").send_keys("short")
    page.find("register-btn").click()
    page.wait(lambda d: page.find("auth-error").is_displayed(), "validation error shown")
    error = page.find("auth-error").text
    assert "handle" in error
    assert "password" in error
    page.find("auth-handle").clear()
    page.find("auth-handle").send_keys(f"nobody_{secrets.token_hex(3)}")
    page.find("auth-password").clear()
    page.find("auth-password").send_keys(PASSWORD)
    page.find("login-btn").click()
    page.wait(lambda d: "invalid handle or password" in page.find("auth-error").text, "bad login shown")
    assert not page.find("chat-view").is_displayed()
