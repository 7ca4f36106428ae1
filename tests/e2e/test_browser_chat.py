"""The web chat page (local_stack/web) end to end in headless Chromium, real handlers, two widths.

Target: ``CHATFLOW_WEB_URL`` (a running ``make dev``'s page) when set; otherwise the e2e suite's
target (tests/e2e/conftest.py: the local gateway with every catalog function on this run's
database and Redis prefix, or ``CHATFLOW_WS_URL`` / ``CHATFLOW_HTTP_URL``) with the page served
from local_stack/web on an ephemeral port. The browser is Debian's ``chromium`` +
``chromium-driver`` driven by selenium; ``scripts/ensure-browser.sh`` (part of ``make test``)
installs them. Without them the tests skip locally, and fail as root / in CI where they can be
installed.

Users are a desktop (1280x800) and a phone (360x740, emulated as a mobile viewport) talking to
each other. At 360 px every view is checked for horizontal overflow. Screenshots of each width go
to ``BROWSER_SCREENSHOTS`` (a directory) or pytest's ``tmp_path``; the path is printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
PASSWORD = "correct horse battery"  # the tests' own throwaway users
VIEWPORTS = {"desktop": (1280, 800), "narrow": (360, 740)}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Visible elements sticking out of the viewport horizontally, and whether the document scrolls
# sideways (the issue: at 420 px the message pane was cut off).
OVERFLOW_JS = """
const root = document.scrollingElement;
const width = document.documentElement.clientWidth;
const out = [];
for (const e of document.querySelectorAll('body *')) {
  const r = e.getBoundingClientRect();
  if (!r.width || !r.height || getComputedStyle(e).visibility === 'hidden') continue;
  if (e.closest('.sr-only, [hidden]')) continue;
  if (r.right > width + 1 || r.left < -1) {
    const where = `${Math.round(r.left)}..${Math.round(r.right)}`;
    out.push(`${e.tagName.toLowerCase()}#${e.id}.${e.className} ${where}`);
  }
}
return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, overflowing: out.slice(0, 10)};
"""

# Form controls and buttons without an accessible name (a <label>, aria-label/labelledby, or a
# button's text).
UNLABELLED_JS = """
const out = [];
for (const e of document.querySelectorAll('input, textarea, select, button')) {
  if (e.type === 'hidden') continue;
  const byLabel = [...(e.labels || [])].map(l => l.textContent).join(' ').trim();
  const byRef = (e.getAttribute('aria-labelledby') || '').split(/\\s+/)
    .map(id => document.getElementById(id)?.textContent || '').join(' ').trim();
  const own = e.getAttribute('aria-label') || (e.tagName === 'BUTTON' ? e.textContent.trim() : '');
  if (!byLabel && !byRef && !own) out.push(e.id || e.outerHTML.slice(0, 80));
}
return out;
"""


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
    from local_stack.web_page import web_page_app

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
def screenshots(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where this test's screenshots go (kept after the run; printed)."""
    base = os.environ.get("BROWSER_SCREENSHOTS")
    directory = Path(base) if base else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of {request.node.name}: {directory}")
    return directory


class ChatPage:
    """What a user does on the page, by element ids (local_stack/web/index.html)."""

    def __init__(self, driver: Any, url: str, name: str, viewport: str, shots: Path, test: str) -> None:
        self.driver = driver
        self.url = url
        self.name = name
        self.viewport = viewport
        self.shots = shots
        self.test = test
        self.size = VIEWPORTS[viewport]

    @property
    def narrow(self) -> bool:
        return self.viewport == "narrow"

    # --- plumbing ---------------------------------------------------------------------------

    def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = WAIT_S) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            condition, message=f"{self.name}: {what}"
        )

    def wait_text(self, element_id: str, fragment: str) -> None:
        self.wait(lambda d: fragment in self.find(element_id).text, f"{fragment!r} in #{element_id}")

    def find(self, element_id: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def click(self, selector: str, what: str) -> None:
        """Click the element once it is there (retried when a re-render replaced it)."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        def clicked(_: Any) -> bool:
            try:
                self.css(selector).click()
            except (NoSuchElementException, StaleElementReferenceException):
                return False
            return True

        self.wait(clicked, what)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def texts(self, css: str) -> list[str]:
        """textContent of every match, read in one script (the page re-renders lists, so element
        handles can go stale between finding and reading them)."""
        found: list[str] = self.js(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())", css
        )
        return found

    def visible(self, element_id: str) -> bool:
        return bool(
            self.js(
                "const e = document.getElementById(arguments[0]); return !!(e && e.offsetParent)", element_id
            )
        )

    def resize(self, width: int, height: int, mobile: bool) -> None:
        """The exact viewport (a window's size includes browser chrome); ``mobile`` applies the
        page's <meta viewport> as a phone does."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        self.size = (width, height)

    def screenshot(self, label: str) -> Path:
        width, height = self.size
        path = self.shots / f"{self.test}-{self.name}-{label}-{width}x{height}.png"
        self.driver.save_screenshot(str(path))
        return path

    def assert_fits_width(self, where: str) -> None:
        """No horizontal scroll and nothing visible cut off at the side."""
        found = self.js(OVERFLOW_JS)
        assert found["scrollWidth"] <= found["clientWidth"], (
            f"{self.name} ({where}) scrolls sideways: {found}"
        )
        assert found["overflowing"] == [], f"{self.name} ({where}): wider than the viewport: {found}"

    def assert_labelled(self) -> None:
        assert self.js(UNLABELLED_JS) == [], f"{self.name}: controls without an accessible name"

    # --- signing in ------------------------------------------------------------------------

    def open(self, url: str | None = None) -> None:
        self.driver.get(url or self.url)
        self.wait(lambda d: self.js("return document.body.dataset.ready") == "true", "page ready")

    def fill(self, element_id: str, text: str) -> None:
        field = self.find(element_id)
        field.clear()
        field.send_keys(text)

    def register(self, handle: str) -> None:
        self.fill("auth-handle", handle)
        self.fill("auth-password", PASSWORD)
        self.find("register-btn").click()
        self.wait(lambda d: self.find("chat-view").is_displayed(), f"{handle} signed in")
        self.wait_online()

    def login(self, handle: str) -> None:
        self.fill("auth-handle", handle)
        self.fill("auth-password", PASSWORD)
        self.find("login-btn").click()
        self.wait(lambda d: self.find("chat-view").is_displayed(), f"{handle} signed in")
        self.wait_online()

    def wait_online(self) -> None:
        self.wait(
            lambda d: self.find("conn-status").get_attribute("data-state") == "online", "WebSocket online"
        )

    # --- rooms ------------------------------------------------------------------------------

    def to_list(self) -> None:
        """On a phone: back to the conversation list (a no-op on a desktop)."""
        if self.narrow and self.visible("back-btn"):
            self.find("back-btn").click()
            self.wait(lambda d: self.visible("room-list"), "conversation list shown")

    def title(self) -> str:
        return str(self.find("room-title").text)

    def room_id(self) -> str:
        return str(self.find("room-title").get_attribute("data-room-id"))

    def create_room(self, name: str) -> str:
        self.to_list()
        self.fill("new-room-name", name)
        self.find("create-room-btn").click()
        self.wait(lambda d: self.title() == name, f"room {name} open")
        return self.room_id()

    def invite_link(self) -> str:
        """The room's invite link, as a person finds it: People, then "Invite people"."""
        self.open_people()
        self.css("#invite-panel summary").click()
        self.wait(lambda d: self.find("invite-link").is_displayed(), "invite link shown")
        link: str = self.find("invite-link").get_attribute("value")
        self.close_people()
        return link

    def open_room(self, room_id: str) -> None:
        self.to_list()
        self.click(f'.room-link[data-room-id="{room_id}"]', "room clicked")
        self.wait(lambda d: self.room_id() == room_id, "room opened")

    def badge(self, room_id: str) -> str:
        found = self.texts(f'.room-link[data-room-id="{room_id}"] .badge')
        return found[0] if found else ""

    # --- people -----------------------------------------------------------------------------

    def people(self, online: bool) -> list[str]:
        """Handles in the open room's people list (online or not); reading it on a phone does
        not need the panel open (it is in the DOM), opening it is checked separately."""
        return self.texts("#presence .user.online .name" if online else "#presence .user:not(.online) .name")

    def open_people(self) -> None:
        if self.visible("members-btn"):
            self.find("members-btn").click()
            self.wait(lambda d: self.visible("presence"), "people panel open")

    def close_people(self) -> None:
        if self.visible("members-btn") and self.find("members-btn").get_attribute("aria-expanded") == "true":
            self.find("members-btn").click()

    # --- messages ---------------------------------------------------------------------------

    def bodies(self) -> list[str]:
        return self.texts("#message-list .message .body")

    def wait_for_message(self, body: str) -> None:
        self.wait(lambda d: body in self.bodies(), f"message {body!r} shown")

    def stored(self, body: str) -> bool:
        return bool(
            self.js(
                "return [...document.querySelectorAll('#message-list .message:not(.pending)[data-seq]')]"
                ".some(li => li.querySelector('.body')?.textContent === arguments[0])",
                body,
            )
        )

    def send(self, body: str) -> None:
        """Type and press Enter (the composer sends on Enter); wait for the ack."""
        from selenium.webdriver.common.keys import Keys

        field = self.find("message-input")
        field.send_keys(body)
        field.send_keys(Keys.ENTER)
        self.wait(lambda d: self.stored(body), f"{body!r} acked")
        assert field.get_attribute("value") == ""

    def own_message(self, body: str) -> Any:
        from selenium.webdriver.common.by import By

        for li in self.driver.find_elements(By.CSS_SELECTOR, "#message-list .message.mine"):
            if li.find_element(By.CSS_SELECTOR, ".body").text == body:
                return li
        raise AssertionError(f"{self.name}: no own message {body!r}")

    def message_action(self, body: str, action: str) -> None:
        """Point at one's own message and click its "Edit"/"Delete" (they show on hover)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        li = self.own_message(body)
        self.js("arguments[0].scrollIntoView({block: 'center'})", li)
        ActionChains(self.driver).move_to_element(li).perform()
        li.find_element(By.CSS_SELECTOR, f"button.{action}").click()

    def edit_message(self, body: str, new_body: str) -> None:
        from selenium.webdriver.common.keys import Keys

        self.message_action(body, "edit")
        editor = self.wait(lambda d: self.css(".edit-form textarea"), "editor open")
        assert self.js("return document.activeElement === arguments[0]", editor), "the editor has focus"
        editor.clear()
        editor.send_keys(new_body, Keys.ENTER)
        self.wait(lambda d: new_body in self.bodies(), "edit saved")

    def delete_message(self, body: str) -> None:
        self.message_action(body, "delete")
        self.wait(lambda d: self.find("confirm-delete").is_displayed(), "delete confirmation shown")
        assert self.find("confirm-delete-text").text == body
        self.find("confirm-delete-ok").click()
        self.wait(lambda d: body not in self.bodies(), "deleted")

    def session(self) -> dict[str, Any]:
        raw = self.js("return sessionStorage.getItem('chatflow.session')")
        data: dict[str, Any] = json.loads(raw)
        return data

    def scroll_history_to_top(self) -> bool:
        """Scroll the message pane to the top (loads older history); True once 'seed 1' shows."""
        self.js("document.getElementById('messages').scrollTop = 0")
        return "seed 1" in self.bodies()


@pytest.fixture
def new_page(
    browser_ready: None, web_url: str, tmp_path: Path, screenshots: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str, str], ChatPage]]:
    """``new_page(name, viewport)``: a fresh headless Chromium (own profile) at that viewport."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    pages: list[ChatPage] = []

    def make(name: str, viewport: str = "desktop") -> ChatPage:
        width, height = VIEWPORTS[viewport]
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
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--user-data-dir={tmp_path / f'profile-{name}'}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        driver.set_page_load_timeout(WAIT_S)
        page = ChatPage(driver, web_url, name, viewport, screenshots, request.node.name)
        page.resize(width, height, mobile=viewport == "narrow")
        pages.append(page)
        return page

    yield make
    # The final state too (what a failed wait left on screen): every page before any browser
    # quits, or the others would show that user gone offline.
    for page in pages:
        with contextlib.suppress(Exception):
            page.screenshot("final")
    for page in pages:
        with contextlib.suppress(Exception):
            page.driver.quit()


def _api_urls(page: ChatPage) -> tuple[str, str]:
    """The page's target: ``(httpUrl, wsUrl)`` from its config.json."""
    cfg = page.js("return fetch('config.json').then(r => r.ok ? r.json() : {}).catch(() => ({}))")
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


def _users(tag: str) -> tuple[str, str]:
    return f"alice_{tag}", f"bob_{tag}"


def _signed_up(new_page: Callable[[str, str], ChatPage], name: str, viewport: str, handle: str) -> ChatPage:
    page = new_page(name, viewport)
    page.open()
    page.register(handle)
    return page


def _two_in_a_room(
    new_page: Callable[[str, str], ChatPage], room: str, alice_viewport: str, bob_viewport: str
) -> tuple[ChatPage, ChatPage, str]:
    """Alice signs up and creates ``room``; Bob opens her invite link, signs up and lands in it."""
    alice_handle, bob_handle = _users(room.rsplit(" ", 1)[-1])
    alice = _signed_up(new_page, "alice", alice_viewport, alice_handle)
    room_id = alice.create_room(room)
    link = alice.invite_link()
    bob = new_page("bob", bob_viewport)
    bob.open(link)
    bob.register(bob_handle)
    bob.wait(lambda d: bob.room_id() == room_id, "bob in the room through the invite link")
    return alice, bob, room_id


def test_desktop_and_phone_users_chat(new_page: Callable[[str, str], ChatPage], local_gateway: Any) -> None:
    """Alice on a desktop, Bob on a phone: invite link, history, typing, live messages both ways,
    edit and delete (mouse and keyboard), presence, reconnect + resume, reload."""
    tag = secrets.token_hex(3)
    alice_handle, bob_handle = _users(tag)
    room_name = f"lobby {tag}"

    alice = _signed_up(new_page, "alice", "desktop", alice_handle)
    room_id = alice.create_room(room_name)
    header = alice.find("room-title").text + alice.find("room-subtitle").text
    assert not UUID.search(header), f"the room header shows an id: {header!r}"
    link = alice.invite_link()
    assert link.endswith(f"#room={room_id}")

    _seed_messages(alice, room_id, SEEDED)
    alice.wait_for_message(f"seed {SEEDED}")  # her page got them live (another connection of hers)

    # Bob opens the invite link on his phone, signs up, and lands in the room.
    bob = new_page("bob", "narrow")
    bob.open(link)
    bob.assert_fits_width("sign-in")
    bob.screenshot("sign-in")
    bob.register(bob_handle)
    bob.wait(lambda d: bob.title() == room_name, "joined through the invite link")
    assert bob.visible("message-input"), "the open room is shown"
    assert not bob.visible("room-list"), "a phone shows one pane at a time"

    # History: the latest page first, older pages as he scrolls up (keyset, ?before=).
    bob.wait_for_message(f"seed {SEEDED}")
    assert "seed 1" not in bob.bodies()
    bob.wait(lambda d: bob.scroll_history_to_top() or "seed 1" in bob.bodies(), "older history on scroll")
    seeded = [b for b in bob.bodies() if b.startswith("seed ")]
    assert seeded == [f"seed {n}" for n in range(1, SEEDED + 1)]  # in order, no gaps, no duplicates
    bob.wait(lambda d: "Beginning" in bob.find("history-status").text, "history exhausted")

    # Typing, both ways.
    bob.find("message-input").send_keys("hel")
    alice.wait(lambda d: f"{bob_handle} is typing" in alice.find("typing-indicator").text, "bob typing shown")
    alice.find("message-input").send_keys("yo")
    bob.wait(lambda d: f"{alice_handle} is typing" in bob.find("typing-indicator").text, "alice typing shown")
    alice.find("message-input").clear()

    # Live messages both ways, acked; Enter sends.
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
            page.js(
                "return document.querySelectorAll('#message-list .body img, #message-list .body b').length"
            )
            == 0
        )
        assert page.js("return window.__xss === undefined")

    # Edit and delete own messages (pointer), the change reaches the other page live.
    bob.send("oops, wrong room")
    alice.wait_for_message("oops, wrong room")
    bob.edit_message("oops, wrong room", "right room after all")
    bob.assert_fits_width("after an edit")
    alice.wait_for_message("right room after all")
    assert "oops, wrong room" not in alice.bodies()
    alice.wait(
        lambda d: "(edited)" in alice.texts("#message-list .message[data-seq] .state"), "shown as edited"
    )
    bob.delete_message("right room after all")
    alice.wait(
        lambda d: "right room after all" not in alice.bodies() and "message deleted" in alice.bodies(),
        "deletion shown live",
    )

    # Keyboard: Up in the empty composer edits one's last message, Escape cancels, Enter saves.
    from selenium.webdriver.common.keys import Keys

    composer = alice.find("message-input")
    composer.click()
    composer.send_keys(Keys.ARROW_UP)
    editor = alice.wait(lambda d: alice.css(".edit-form textarea"), "Up opens the editor")
    assert editor.get_attribute("value") == markup
    editor.send_keys(Keys.ESCAPE)
    alice.wait(lambda d: not alice.texts(".edit-form"), "Escape cancels")
    assert alice.js("return document.activeElement.id") == "message-input"
    composer.send_keys(Keys.ARROW_UP)
    editor = alice.wait(lambda d: alice.css(".edit-form textarea"), "editor again")
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("markup, fixed", Keys.ENTER)
    bob.wait_for_message("markup, fixed")
    alice.screenshot("room")
    bob.screenshot("room")
    bob.assert_fits_width("room")
    for page in (alice, bob):
        page.assert_labelled()

    # Presence in the people list: bob signs out (his only socket closes) and back in, alice's
    # connection drops for a moment; each sees the other go and come back.
    bob.find("logout").click()
    bob.wait(lambda d: bob.find("auth-view").is_displayed(), "bob signed out")
    alice.wait(lambda d: bob_handle in alice.people(online=False), "bob shown offline")
    bob.login(bob_handle)
    bob.wait(lambda d: bob.title() == room_name, "room reopened after sign-in")
    alice.wait(lambda d: bob_handle in alice.people(online=True), "bob shown online again")
    bob.open_people()
    alice.js("window.chatflowTest.dropConnection(arguments[0])", 1500)
    bob.wait(lambda d: alice_handle in bob.people(online=False), "alice shown offline on bob's phone")
    bob.wait(lambda d: alice_handle in bob.people(online=True), "alice shown online again")
    bob.assert_fits_width("people panel")
    bob.screenshot("people")
    bob.close_people()
    alice.wait_online()

    # Reconnect + resume: bob's socket drops (held down for a while); what alice sends meanwhile
    # reaches bob's page through resume once it reconnects, exactly once.
    bob.js("window.chatflowTest.dropConnection(arguments[0])", 3000)
    bob.wait(lambda d: bob.find("conn-status").get_attribute("data-state") != "online", "socket dropped")
    bob.wait(lambda d: bob.find("conn-banner").is_displayed(), "reconnecting banner")
    alice.send("while bob was away")
    bob.wait_online()
    bob.wait_for_message("while bob was away")
    assert bob.bodies().count("while bob was away") == 1

    # Reload: the session and the open room survive; live delivery continues on the new socket.
    bob.driver.refresh()
    bob.wait(lambda d: d.execute_script("return document.body.dataset.ready") == "true", "reloaded")
    bob.wait_online()
    bob.wait(lambda d: bob.title() == room_name, "room restored after reload")
    bob.wait_for_message("while bob was away")
    alice.send("after the reload")
    bob.wait_for_message("after the reload")
    assert bob.bodies().count("after the reload") == 1

    if local_gateway is not None:
        _assert_events_reached_their_targets(local_gateway.gateway.bus, f"hello from {bob_handle}")


def test_direct_messages_and_unread_counts(new_page: Callable[[str, str], ChatPage]) -> None:
    """A DM started from the people list; unread badges from read positions, which survive a reload
    (they are the server's) and clear once read."""
    tag = secrets.token_hex(3)
    alice_handle, bob_handle = _users(tag)
    alice = _signed_up(new_page, "alice", "desktop", alice_handle)
    lobby = alice.create_room(f"news {tag}")
    alice.send("welcome")

    bob = _signed_up(new_page, "bob", "narrow", bob_handle)
    # A public room to join, listed by name.
    bob.wait(lambda d: f"# news {tag}" in bob.texts("#public-room-list .room-name"), "public room listed")
    bob.click(f'#public-room-list li[data-room-id="{lobby}"] button', "join clicked")
    bob.wait(lambda d: bob.room_id() == lobby, "joined from the public list")
    bob.wait_for_message("welcome")

    # Bob messages alice from the people list.
    bob.open_people()
    bob.wait(lambda d: alice_handle in bob.texts("#presence .user .name"), "alice listed")
    bob.click("#presence .user button.message-user", "message alice clicked")
    bob.wait(lambda d: bob.title() == alice_handle, "DM with alice open")
    dm = bob.room_id()
    bob.send("psst")

    # Alice is in the lobby: the DM appears with one unread, the tab title counts it.
    alice.wait(lambda d: alice.badge(dm) == "1", "DM unread badge")
    assert alice.texts(f'#dm-list .room-link[data-room-id="{dm}"] .room-name') == [bob_handle]
    assert alice.driver.title.startswith("(1)")
    alice.send("lobby news 1")
    alice.send("lobby news 2")
    # Bob is in the DM on his phone: the back button counts what is waiting elsewhere.
    bob.wait(lambda d: bob.find("back-unread").text == "2", "unread elsewhere on the back button")
    alice.screenshot("unread")

    alice.open_room(dm)
    alice.wait_for_message("psst")
    assert alice.texts("#message-list .divider.new") == ["New messages"]
    alice.wait(lambda d: alice.badge(dm) == "" and not alice.driver.title.startswith("("), "DM read")
    alice.send("hi bob")
    bob.wait_for_message("hi bob")
    bob.wait(lambda d: d.title == "(2) Chatflow", "bob read the DM; two wait in the lobby")

    # The counts are read positions on the server: a reload shows the same.
    bob.driver.refresh()
    bob.wait(lambda d: d.execute_script("return document.body.dataset.ready") == "true", "reloaded")
    bob.wait_online()
    bob.to_list()
    bob.wait(lambda d: bob.badge(lobby) == "2", "lobby unread after reload")
    bob.assert_fits_width("conversation list")
    bob.screenshot("list")
    bob.open_room(lobby)
    bob.wait_for_message("lobby news 2")
    bob.wait(lambda d: bob.js("return document.title") == "Chatflow", "read")
    bob.driver.refresh()
    bob.wait(lambda d: d.execute_script("return document.body.dataset.ready") == "true", "reloaded again")
    bob.wait_online()
    bob.to_list()
    assert bob.badge(lobby) == ""

    # Opening a DM by handle finds the existing one; mistakes read as sentences.
    alice.open_room(lobby)
    alice.fill("dm-handle", bob_handle)
    alice.find("dm-btn").click()
    alice.wait(lambda d: alice.room_id() == dm, "the same DM")
    alice.wait(lambda d: not alice.find("dm-handle").get_attribute("value"), "the field emptied")
    for handle, sentence in (
        (f"nobody_{tag}", "There's nobody with that handle."),
        (alice_handle, "That's you!"),
    ):
        alice.fill("dm-handle", handle)
        alice.find("dm-btn").click()
        alice.wait_text("sidebar-error", sentence)

    # A private room: alice adds bob by handle; he finds it in his list once she writes in it.
    alice.fill("new-room-name", f"secret {tag}")
    alice.find("new-room-private").click()
    alice.find("create-room-btn").click()
    alice.wait(lambda d: alice.title() == f"secret {tag}", "private room open")
    secret = alice.room_id()
    assert "Private room" in alice.find("room-subtitle").text
    alice.css("#invite-panel summary").click()
    assert not alice.find("invite-link").is_displayed(), "a private room has no invite link"
    alice.fill("add-member-handle", bob_handle)
    alice.find("add-member-btn").click()
    alice.wait_text("invite-status", f"{bob_handle} was added.")
    alice.send("just us")
    bob.wait(lambda d: bob.badge(secret) == "1", "the private room appears for bob, unread")
    assert bob.texts(f'.room-link[data-room-id="{secret}"] .room-name') == [f"🔒 secret {tag}"]


def test_rapid_sends_keep_the_order_typed_for_sender_and_recipient(
    new_page: Callable[[str, str], ChatPage],
) -> None:
    """Issue 9: the server processes one connection's frames concurrently, so the page must not
    have two sends in flight in one room. Ten messages submitted back to back on a phone (one
    script, faster than anyone types) are stored, and shown on both pages, in the order typed."""
    alice, bob, _ = _two_in_a_room(new_page, f"rapid {secrets.token_hex(3)}", "narrow", "desktop")

    typed = [f"quick {i}" for i in range(10)]
    alice.js(
        """
        const input = document.getElementById('message-input');
        const form = document.getElementById('composer');
        for (const body of arguments[0]) { input.value = body; form.requestSubmit(); }
        """,
        typed,
    )

    def stored(page: ChatPage) -> list[tuple[int, str]]:
        rows: list[list[Any]] = page.js(
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
    for page in (alice, bob):
        page.wait_text("history-status", "Beginning of the conversation")
    alice.assert_fits_width("ten messages")
    alice.screenshot("rapid")
    bob.screenshot("rapid")
    # Dark mode follows the system.
    bob.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    bob.screenshot("rapid-dark")
    # The phone (420 px) and a tablet: still nothing cut off at the side.
    for width, height in ((420, 860), (768, 1024)):
        alice.resize(width, height, mobile=True)
        alice.assert_fits_width(f"{width} px")
        alice.screenshot("rapid")


def test_people_already_online_show_when_a_room_opens(new_page: Callable[[str, str], ChatPage]) -> None:
    """The presence snapshot (``joined.presence`` / the ``presence`` action, docs/protocol.md):
    Bob opens a room and sees Alice online although she has said nothing and changed nothing."""
    tag = secrets.token_hex(3)
    alice_handle, bob_handle = _users(tag)
    alice, bob, _ = _two_in_a_room(new_page, f"quiet {tag}", "desktop", "narrow")

    def answered(_: Any) -> str | None:
        support: str = bob.js("return window.chatflowTest.presenceSnapshots()")
        return None if support == "unknown" else support

    support = bob.wait(answered, "the server answered joinRoom / presence")
    if support == "no":
        pytest.skip("this server offers no presence snapshot (the presence action is unknown_action)")
    bob.open_people()
    bob.wait(lambda d: alice_handle in bob.people(online=True), "alice listed online from the snapshot")
    # Alice learns Bob when he shows up (typing), and whether he is online from a fresh snapshot.
    bob.find("message-input").send_keys("hi")
    alice.wait(lambda d: bob_handle in alice.people(online=True), "bob listed online")


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


DEVELOPER_WORDING = ("String should", "Field required", "validation failed", "HTTP 4", "loc", "body.")


def test_sign_in_mistakes_read_as_sentences(new_page: Callable[[str, str], ChatPage]) -> None:
    page = new_page("carol", "narrow")
    page.open()
    page.assert_fits_width("sign-in")
    page.assert_labelled()

    # The form's own checks, next to each field.
    page.fill("auth-handle", "c")
    page.fill("auth-password", "short")
    page.find("register-btn").click()
    page.wait(lambda d: page.find("auth-handle-error").is_displayed(), "field errors shown")
    assert page.find("auth-handle-error").text == "A handle needs at least 3 characters."
    assert page.find("auth-password-error").text == "A password needs at least 8 characters."
    assert page.find("auth-handle").get_attribute("aria-invalid") == "true"
    assert page.js("return document.activeElement.id") == "auth-handle"
    page.assert_fits_width("sign-in with errors")
    page.screenshot("sign-in-errors")

    # The same table read on the SERVER's answer to that input (422 details.fields).
    described = page.driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const config = fetch('config.json').then(r => r.json());
        Promise.all([import('./chatflow.js'), import('./errors.js'), config])
          .then(async ([client, errors, cfg]) => {
            const api = new client.HttpApi({httpUrl: cfg.httpUrl});
            try { await api.register('c', 'short'); done({unexpected: 'registered'}); }
            catch (err) { done({status: err.status, code: err.code, ...errors.describeError(err)}); }
          }).catch(err => done({failed: String(err)}));
        """
    )
    assert described["status"] == 422, described
    assert described["fields"] == {
        "handle": "A handle needs at least 3 characters.",
        "password": "A password needs at least 8 characters.",
    }, described

    # Server-side refusals: a taken handle, a wrong password.
    handle = f"carol_{secrets.token_hex(3)}"
    page.register(handle)
    page.find("logout").click()
    page.wait(lambda d: page.find("auth-view").is_displayed(), "signed out")
    page.fill("auth-handle", handle)
    page.fill("auth-password", PASSWORD)
    page.find("register-btn").click()
    page.wait(lambda d: "already taken" in page.find("auth-error").text, "handle taken shown")
    page.fill("auth-password", "not the password")
    page.find("login-btn").click()
    page.wait(lambda d: "don't match" in page.find("auth-error").text, "bad sign-in shown")
    assert not page.find("chat-view").is_displayed()
    shown = page.find("auth-error").text + page.find("auth-handle-error").text
    assert not any(word in shown for word in DEVELOPER_WORDING), shown


def test_the_page_can_be_pointed_at_another_stack(new_page: Callable[[str, str], ChatPage]) -> None:
    """Endpoints (docs/web-chat.md): ``?http=&ws=`` and the sign-in screen's "Server" (saved per
    browser) where the host's config.json allows it; an unreachable server reads as a sentence."""
    page = new_page("dave", "narrow")
    page.open()
    http_url, _ = _api_urls(page)
    default_host = http_url.split("//", 1)[1].rstrip("/")
    assert page.find("server-host").get_attribute("textContent") == default_host
    nowhere = "http://127.0.0.1:9"  # the discard port: nothing listens there

    page.open(f"{page.url}?http={nowhere}&ws=ws://127.0.0.1:9")
    assert page.find("server-host").get_attribute("textContent") == "127.0.0.1:9"

    page.open()
    page.css("#server-settings summary").click()
    page.fill("server-http", "not a url")
    page.find("server-save").click()
    page.wait_text("server-error", "Enter the HTTP API's address")
    page.fill("server-http", nowhere)
    page.fill("server-ws", "ws://127.0.0.1:9")
    page.find("server-save").click()
    page.wait(lambda d: page.find("server-host").get_attribute("textContent") == "127.0.0.1:9", "saved")
    page.fill("auth-handle", "dave")
    page.fill("auth-password", PASSWORD)
    page.find("login-btn").click()
    page.wait_text("auth-error", "Can't reach the chat server.")
    page.assert_fits_width("server settings")
    page.screenshot("server")

    page.css("#server-settings summary").click()
    page.find("server-reset").click()
    page.wait(lambda d: page.find("server-host").get_attribute("textContent") == default_host, "reset")
