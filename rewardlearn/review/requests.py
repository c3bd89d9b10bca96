"""Checks of the review server's requests: Host names, JSON depth, byte ranges, ids.

Kept apart from the server so each rule can be read and tested on its own: a ``Host``
must be a literal loopback address (or the host the server was bound to), JSON bodies
may nest only :data:`MAX_JSON_DEPTH` levels, integers must fit SQLite, and a store
refusal maps to one HTTP status.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

from rewardlearn.review.store import (
    SQLITE_MAX_INT,
    AlreadyAnsweredError,
    InvalidLabelError,
    LabelStoreError,
    LeaseHeldError,
    StoreUnavailableError,
    UnknownQueryError,
    check_annotator,
)

MAX_JSON_DEPTH = 20
_PORT_RE = re.compile(r"[0-9]{1,5}")


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` value, ``name[:port]`` or ``[ipv6][:port]``.

    The name comes back lower-cased without brackets; None when malformed.
    """
    v = value.strip()
    if not v or any(c in v for c in "/\\@?#, \t"):
        return None
    if v.startswith("["):
        end = v.find("]")
        if end < 0:
            return None
        name, rest = v[1:end], v[end + 1:]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        if "[" in v or "]" in v or v.count(":") > 1:
            return None
        name, sep, port_text = v.partition(":")
        rest = ":" + port_text if sep else ""
    port = None
    if rest:
        if not rest.startswith(":") or not _PORT_RE.fullmatch(rest[1:]) \
                or int(rest[1:]) > 65535:
            return None
        port = int(rest[1:])
    if not name:
        return None
    return name.lower(), port


def is_loopback(name: str) -> bool:
    """True for ``localhost`` and literal loopback addresses (127.0.0.0/8, ::1)."""
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def host_allowed(header: str, bound: str | None = None) -> bool:
    """Whether a ``Host`` header names a literal loopback address or the bound host."""
    parsed = parse_host(header)
    if parsed is None:
        return False
    name = parsed[0]
    return is_loopback(name) or (bool(bound) and name == str(bound).strip("[]").lower())


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when JSON ``text`` nests arrays/objects deeper than ``limit`` (checked unparsed)."""
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


class HTTPError(Exception):
    """An error answer: status code and message (sent as JSON)."""

    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def finite(x: Any) -> Any:
    """``x`` with NaN/inf floats replaced by None (JSON for browsers has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte of a single ``bytes=`` range; None to serve the whole file.

    Raises ``HTTPError(416)`` for a range that starts past the end of the file.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    a, sep, b = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                raise HTTPError(416, "empty suffix range")
            return max(0, size - n), size - 1
        first = int(a)
        last = int(b) if b else size - 1
    except ValueError:
        return None
    if first >= size:
        raise HTTPError(416, "range starts past the end")
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


def parse_annotator(value: Any) -> str:
    if value is None:
        raise HTTPError(400, "annotator is required")
    try:
        return check_annotator(value)
    except InvalidLabelError as e:
        raise HTTPError(400, str(e)) from None


def parse_int(value: str, name: str, lo: int, hi: int = SQLITE_MAX_INT) -> int:
    try:
        n = int(value)
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer") from None
    if n < lo or n > hi:
        raise HTTPError(400, f"{name} out of range ({lo}..{hi})")
    return n


def parse_query_id(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise HTTPError(400, "query_id must be an integer")
    if not 1 <= value <= SQLITE_MAX_INT:
        raise HTTPError(400, f"query_id out of range (1..{SQLITE_MAX_INT})")
    return value


def store_status(err: LabelStoreError) -> int:
    """HTTP status of a store refusal."""
    if isinstance(err, UnknownQueryError):
        return 404
    if isinstance(err, (AlreadyAnsweredError, LeaseHeldError)):
        return 409
    if isinstance(err, StoreUnavailableError):
        return 503
    if isinstance(err, InvalidLabelError):
        return 400
    return 500
