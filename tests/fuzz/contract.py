"""What a gateway may answer, read from the contract itself (docs/DESIGN.md §2).

The fuzz suites hold every reply to this: a server message type and error code that §2 lists,
a close code from §2's table (1011, an internal error, is a bug here) or one RFC 6455 §7.4.1
defines for the websocket layer's own refusals, and an HTTP status below 500.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CLOSE_CODES", "ERROR_CODES", "MESSAGE_TYPES", "RFC_CLOSE_CODES"]

_DESIGN = (Path(__file__).resolve().parents[2] / "docs" / "DESIGN.md").read_text()
_SERVER = _DESIGN[_DESIGN.index("Server → client:") : _DESIGN.index("Close codes, and what")]

#: message types the server sends (§2's "Server → client" table)
MESSAGE_TYPES = frozenset(re.findall(r'"type":"(\w+)"', _SERVER))
#: `error` codes (§2)
ERROR_CODES = frozenset(re.findall(r"`(\w+)`", _SERVER[_SERVER.index("codes:") :].split("\n")[0]))
#: close codes of §2's table, minus 1011: an internal error is what the fuzz hunts for
CLOSE_CODES = frozenset(
    int(code) for code in re.findall(r"^\| (\d{4}) \|", _DESIGN, flags=re.MULTILINE)
) - {1011}
#: sent by the websocket layer itself: protocol error, invalid UTF-8 (RFC 6455 §7.4.1)
RFC_CLOSE_CODES = frozenset({1002, 1007})

assert {"welcome", "snapshot", "error", "reconnect"} <= MESSAGE_TYPES, MESSAGE_TYPES
assert {"bad_request", "unauthorized"} <= ERROR_CODES, ERROR_CODES
assert {1000, 1009, 4401} <= CLOSE_CODES, CLOSE_CODES
