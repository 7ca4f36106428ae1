"""The error every emulated AWS API raises for a client or service failure, with AWS's code, HTTP
status and message; each protocol renders it its own way (AWS JSON: ``{"__type", "message"}``;
REST: ``x-amzn-ErrorType`` + ``{"message"}``)."""

from __future__ import annotations

from collections.abc import Mapping


class AwsError(Exception):
    status = 400
    code = "ValidationException"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})
