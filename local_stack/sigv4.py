"""AWS Signature Version 4 verification for the local AWS endpoints (@connections, EventBridge, SQS,
Lambda), so code that forgot to sign -- or signs for the wrong service, region or key -- fails
locally as it would in the cloud.

What is checked, in AWS's order, with AWS's error codes and messages (docs/local-stack.md cites
the sources):

* an ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` header,
  or the presigned-URL query parameters (``X-Amz-Algorithm``, ``X-Amz-Credential``, ...); neither
  -> ``MissingAuthenticationTokenException`` "Missing Authentication Token";
* a malformed header (a part missing, no ``X-Amz-Date``/``Date``) -> ``IncompleteSignatureException``;
* the access key id must be one of the configured local key pairs, without a session token ->
  ``UnrecognizedClientException`` "The security token included in the request is invalid.";
* the credential scope: its date equals the request date's, its region the local region, its
  service the one the endpoint serves (``execute-api`` for @connections, ``events``, ``sqs``,
  ``lambda``), its terminator ``aws4_request``;
* ``host`` and ``x-amz-date`` (or ``date``) must be signed;
* the request time within 5 minutes of the server's clock ("Signature expired" / "Signature not
  yet current"), or a presigned URL not past ``X-Amz-Expires``;
* the signature, recomputed from the request as received (method, path, query, the signed
  headers, the SHA-256 of the body) -> ``InvalidSignatureException`` with the canonical request and
  string to sign the server expected, as AWS answers.

The canonical request follows the SigV4 specification ("Create a canonical request for Signature
Version 4" in the IAM user guide); tests/unit/test_sigv4.py proves it against botocore's signer.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
#: AWS rejects requests whose time is more than 5 minutes off the server's clock.
MAX_SKEW_S = 300
#: The usual test credentials (moto, LocalStack docs, this repository's tests).
DEFAULT_KEY_PAIR = ("testing", "testing")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"


class SignatureError(Exception):
    """The request is not (correctly) signed; ``code`` and ``message`` are AWS's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _missing() -> SignatureError:
    return SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")


def _unrecognized() -> SignatureError:
    return SignatureError(
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )


def _invalid(message: str) -> SignatureError:
    return SignatureError("InvalidSignatureException", message)


@dataclass(frozen=True)
class SigV4Config:
    """What the local endpoints accept: key pairs (access key id -> secret), the region, the skew."""

    key_pairs: Mapping[str, str] = field(default_factory=lambda: dict([DEFAULT_KEY_PAIR]))
    region: str = "us-east-1"
    max_skew_s: int = MAX_SKEW_S

    @classmethod
    def single(cls, access_key_id: str, secret_access_key: str, region: str) -> SigV4Config:
        return cls({access_key_id: secret_access_key}, region)


@dataclass(frozen=True)
class SignedRequest:
    """A request as the server received it: the raw path and query (still percent-encoded)."""

    method: str
    raw_path: str
    raw_query: str
    #: Every header as received, duplicates kept (name case does not matter).
    headers: Sequence[tuple[str, str]]
    body: bytes

    @functools.cached_property
    def _by_name(self) -> dict[str, list[str]]:
        by_name: dict[str, list[str]] = {}
        for key, value in self.headers:
            by_name.setdefault(key.lower(), []).append(value)
        return by_name

    def header_values(self, name: str) -> list[str]:
        return self._by_name.get(name.lower(), [])

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


@dataclass(frozen=True)
class _Auth:
    access_key: str
    scope_date: str
    scope_region: str
    scope_service: str
    scope_terminator: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    #: Presigned URLs: seconds the signature stays valid; None for header auth.
    expires_s: int | None
    session_token: str | None


# --- canonical request ------------------------------------------------------------------------


def canonical_path(raw_path: str) -> str:
    """The path with dot segments and empty segments removed, then URI-encoded again (every AWS
    service but S3 encodes the already-encoded path a second time)."""
    if not raw_path:
        return "/"
    kept: list[str] = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    path = ("/" if raw_path.startswith("/") else "") + "/".join(kept)
    if raw_path.endswith("/") and kept:
        path += "/"
    return quote(path or "/", safe="/~")


def _rfc3986(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(raw_query: str, *, drop: Iterable[str] = ()) -> str:
    """Each name and value decoded then encoded as RFC 3986 unreserved-only, sorted by name, then
    value (the signature itself is dropped for presigned URLs)."""
    skip = set(drop)
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&") if raw_query else ():
        name, _, value = part.partition("=")
        decoded = unquote(name)
        if decoded in skip:
            continue
        pairs.append((_rfc3986(decoded), _rfc3986(unquote(value))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _trimall(value: str) -> str:
    return " ".join(value.split())


def canonical_headers(request: SignedRequest, names: Sequence[str]) -> str:
    lines = [f"{name}:{','.join(_trimall(v) for v in request.header_values(name))}\n" for name in names]
    return "".join(lines)


def canonical_request(request: SignedRequest, auth: _Auth) -> str:
    payload = (
        request.header("x-amz-content-sha256") if "x-amz-content-sha256" in auth.signed_headers else None
    )
    if payload is None:
        payload = hashlib.sha256(request.body).hexdigest()
    drop = ("X-Amz-Signature",) if auth.expires_s is not None else ()
    return "\n".join(
        [
            request.method.upper(),
            canonical_path(request.raw_path),
            canonical_query(request.raw_query, drop=drop),
            canonical_headers(request, auth.signed_headers),
            ";".join(auth.signed_headers),
            payload,
        ]
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=64)  # one key per (secret, day, region, service): 4 HMACs saved per call
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, TERMINATOR)


def string_to_sign(auth: _Auth, canonical: str) -> str:
    scope = f"{auth.scope_date}/{auth.scope_region}/{auth.scope_service}/{auth.scope_terminator}"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{auth.amz_date}\n{scope}\n{digest}"


# --- parsing ----------------------------------------------------------------------------------


def _parse_header_auth(request: SignedRequest, header: str) -> _Auth:
    algorithm, _, rest = header.strip().partition(" ")
    parts: dict[str, str] = {}
    if algorithm == ALGORITHM:
        for item in rest.split(","):
            key, sep, value = item.strip().partition("=")
            if sep:
                parts[key.strip()] = value.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not parts.get(name)
    ]
    amz_date = request.header("x-amz-date")
    date_header = request.header("date")
    if amz_date is None and date_header is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise SignatureError("IncompleteSignatureException", " ".join([*problems, f"Authorization={header}"]))
    amz = amz_date if amz_date is not None else _http_date_to_amz(date_header or "")
    return _auth_from(
        parts["Credential"],
        parts["SignedHeaders"],
        parts["Signature"],
        amz,
        expires_s=None,
        session_token=request.header("x-amz-security-token"),
    )


def _http_date_to_amz(value: str) -> str:
    try:
        return datetime.strptime(value.strip(), _HTTP_DATE).replace(tzinfo=UTC).strftime(_AMZ_DATE)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{value}'."
        ) from None


def _query_params(raw_query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw_query.split("&") if raw_query else ():
        name, _, value = part.partition("=")
        out.setdefault(unquote(name), unquote(value))
    return out


def _parse_query_auth(params: Mapping[str, str]) -> _Auth:
    required = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
    missing = [
        f"AWS query-string parameters must include '{name}'." for name in required if not params.get(name)
    ]
    if params.get("X-Amz-Algorithm", ALGORITHM) != ALGORITHM:
        missing.append(f"Unsupported AWS 'algorithm': '{params['X-Amz-Algorithm']}'.")
    if missing:
        raise SignatureError("IncompleteSignatureException", " ".join(missing))
    try:
        expires = int(params.get("X-Amz-Expires", "900"))
    except ValueError:
        raise SignatureError("IncompleteSignatureException", "X-Amz-Expires must be an integer.") from None
    return _auth_from(
        params["X-Amz-Credential"],
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        params["X-Amz-Date"],
        expires_s=expires,
        session_token=params.get("X-Amz-Security-Token"),
    )


def _auth_from(
    credential: str,
    signed_headers: str,
    signature: str,
    amz_date: str,
    *,
    expires_s: int | None,
    session_token: str | None,
) -> _Auth:
    pieces = credential.split("/")
    if len(pieces) != 5 or not all(pieces):
        raise SignatureError(
            "IncompleteSignatureException",
            f"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{credential}'",
        )
    return _Auth(
        access_key=pieces[0],
        scope_date=pieces[1],
        scope_region=pieces[2],
        scope_service=pieces[3],
        scope_terminator=pieces[4],
        signed_headers=tuple(h.strip().lower() for h in signed_headers.split(";") if h.strip()),
        signature=signature.strip().lower(),
        amz_date=amz_date.strip(),
        expires_s=expires_s,
        session_token=session_token,
    )


# --- verification -----------------------------------------------------------------------------


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(_AMZ_DATE)


_AMZ_DATE_SHAPE = re.compile(r"\d{8}T\d{6}Z")


def _amz_epoch(amz_date: str) -> float:
    """``20261125T100000Z`` -> epoch seconds (strptime costs a quarter of a verification)."""
    if not _AMZ_DATE_SHAPE.fullmatch(amz_date):
        raise ValueError(amz_date)
    fields = (amz_date[0:4], amz_date[4:6], amz_date[6:8], amz_date[9:11], amz_date[11:13], amz_date[13:15])
    year, month, day, hour, minute, second = (int(f) for f in fields)
    # Validates the calendar too (month 13, day 32 raise ValueError).
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def verify(request: SignedRequest, *, service: str, config: SigV4Config, now: float | None = None) -> str:
    """Verify ``request`` for ``service``; returns the access key id or raises SignatureError."""
    header = request.header("authorization")
    params = _query_params(request.raw_query)
    if header is not None:
        auth = _parse_header_auth(request, header)
    elif "X-Amz-Signature" in params or "X-Amz-Credential" in params:
        auth = _parse_query_auth(params)
    else:
        raise _missing()

    secret = config.key_pairs.get(auth.access_key)
    if secret is None or auth.session_token:
        # Temporary credentials were never issued here: AWS answers the same for an unknown token.
        raise _unrecognized()
    try:
        signed_at = _amz_epoch(auth.amz_date)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{auth.amz_date}'."
        ) from None
    if auth.scope_date != auth.amz_date[:8]:
        raise _invalid(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.scope_date}' != '{auth.amz_date[:8]}', from '{auth.amz_date}'."
        )
    if auth.scope_region != config.region:
        raise _invalid(f"Credential should be scoped to a valid region, not '{auth.scope_region}'. ")
    if auth.scope_service != service:
        raise _invalid(f"Credential should be scoped to correct service: '{service}'. ")
    if auth.scope_terminator != TERMINATOR:
        raise _invalid(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{auth.scope_terminator}'. "
        )
    if "host" not in auth.signed_headers:
        raise _invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    date_header = (
        "x-amz-date" if request.header("x-amz-date") is not None or auth.expires_s is not None else "date"
    )
    if auth.expires_s is None and date_header not in auth.signed_headers:
        raise _invalid(
            f"'{'X-Amz-Date' if date_header == 'x-amz-date' else 'Date'}' must be a 'SignedHeader' "
            "in the AWS Authorization."
        )

    clock = time.time() if now is None else now
    if auth.expires_s is None:
        if signed_at < clock - config.max_skew_s:
            raise _invalid(
                f"Signature expired: {auth.amz_date} is now earlier than {_fmt(clock - config.max_skew_s)} "
                f"({_fmt(clock)} - {config.max_skew_s // 60} min.)"
            )
        if signed_at > clock + config.max_skew_s:
            raise _invalid(
                f"Signature not yet current: {auth.amz_date} is still later than "
                f"{_fmt(clock + config.max_skew_s)} ({_fmt(clock)} + {config.max_skew_s // 60} min.)"
            )
    else:
        if not 1 <= auth.expires_s <= 604800:
            raise SignatureError(
                "IncompleteSignatureException", "X-Amz-Expires must be between 1 and 604800 seconds."
            )
        if clock > signed_at + auth.expires_s:
            raise SignatureError("AccessDeniedException", "Request has expired")
        if signed_at > clock + config.max_skew_s:
            raise _invalid(f"Signature not yet current: {auth.amz_date} is still later than {_fmt(clock)}")

    declared = request.header("x-amz-content-sha256")
    actual = hashlib.sha256(request.body).hexdigest()
    # Only S3 accepts an unsigned payload; every other service hashes the body it received.
    if declared is not None and declared.lower() != actual:
        raise _invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
    canonical = canonical_request(request, auth)
    to_sign = string_to_sign(auth, canonical)
    key = signing_key(secret, auth.scope_date, auth.scope_region, auth.scope_service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise _invalid(
            "The request signature we calculated does not match the signature you provided. Check your "
            "AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n"
            f"The Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{to_sign}'\n"
        )
    return auth.access_key
