"""Chatflow client for Python (asyncio): the HTTP API and a managed WebSocket that follows the
protocol's rules (ordered idempotent sends, reconnect + resume, presence by version).

    async with ChatClient(http_url, ws_url) as chat:
        await chat.login("alice", "secret")
        events = chat.events()
        await chat.connect()
        await chat.join(room_id)
        await chat.send(room_id, "hello")

See docs/clients.md in the Chatflow repository.
"""

from chatflow_client.client import ChatClient, ClientOptions, EventStream, OutgoingMessage
from chatflow_client.errors import (
    ActionRefused,
    ApiError,
    ChatflowClientError,
    ClientClosed,
    HandshakeRefused,
    RequestTimeout,
    SessionExpired,
)
from chatflow_client.events import (
    Closed,
    Connected,
    Disconnected,
    Event,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PositionReset,
    PresenceChanged,
    ReadPositionChanged,
    ServerError,
    TypingChanged,
)
from chatflow_client.http import HttpApi, SessionTokens
from chatflow_client.models import (
    Ack,
    ConnectionState,
    HistoryPage,
    Message,
    Peer,
    Presence,
    Room,
    RoomState,
    TokenPair,
    User,
)

__all__ = [
    "Ack",
    "ActionRefused",
    "ApiError",
    "ChatClient",
    "ChatflowClientError",
    "ClientClosed",
    "ClientOptions",
    "Closed",
    "Connected",
    "ConnectionState",
    "Disconnected",
    "Event",
    "EventStream",
    "HandshakeRefused",
    "HistoryPage",
    "HttpApi",
    "Message",
    "MessageDeleted",
    "MessageEdited",
    "MessageReceived",
    "OutgoingMessage",
    "Peer",
    "PositionReset",
    "Presence",
    "PresenceChanged",
    "ReadPositionChanged",
    "RequestTimeout",
    "Room",
    "RoomState",
    "ServerError",
    "SessionExpired",
    "SessionTokens",
    "TokenPair",
    "TypingChanged",
    "User",
]
