"""ODK Collect's configuration QR code for an observer team: the settings that point
Collect at a mission's OpenRosa server.

Format (ODK Collect, "Importing and exporting settings",
https://docs.getodk.org/collect-import-export/): a JSON object with ``general``
(unprotected settings: ``server_url``, ``form_update_mode``, ``autosend``...), ``admin``
(protected settings) and ``project`` (``name``, ``icon``, ``color``), compressed with
zlib and encoded in base64; the QR code carries that text. Settings a code leaves out
are reset to their defaults when it is scanned.
"""

from __future__ import annotations

import base64
import io
import json
import zlib
from typing import Any

import segno


def server_url(base_url: str, token: str, mission_id: str) -> str:
    """The OpenRosa server URL of ``mission_id`` for the holder of ``token``."""
    return f"{base_url.rstrip('/')}/openrosa/key/{token}/missions/{mission_id}"


def collect_settings(*, base_url: str, token: str, mission_id: str, team_id: str) -> dict[str, Any]:
    """Collect's settings for a team: the server (its token in the URL, so no username
    or password), the device's forms matching the server's exactly (a new form version
    replaces the old), finalized forms sent as soon as there is a connection; the
    project named after the mission and team."""
    return {
        "general": {
            "server_url": server_url(base_url, token, mission_id),
            "form_update_mode": "match_exactly",
            "autosend": "wifi_and_cellular",
        },
        "admin": {"change_server": False},
        "project": {"name": f"{mission_id} · {team_id}", "icon": "E", "color": "#1d4ed8"},
    }


def settings_payload(settings: dict[str, Any]) -> str:
    """What the QR code carries: ``base64(zlib(json))``."""
    encoded = json.dumps(settings, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(zlib.compress(encoded, 9)).decode("ascii")


def read_payload(payload: str) -> dict[str, Any]:
    """The settings a payload carries (what Collect reads when it scans the code)."""
    decoded: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(payload)))
    return decoded


def qr_svg(payload: str) -> str:
    """The QR code of ``payload`` as an SVG document (error correction level M)."""
    out = io.BytesIO()
    segno.make(payload, micro=False, error="m").save(out, kind="svg", scale=4, border=4)
    return out.getvalue().decode("utf-8")


def qr_terminal(payload: str) -> str:
    """The QR code of ``payload`` drawn with block characters, for a terminal."""
    out = io.StringIO()
    segno.make(payload, micro=False, error="m").terminal(out=out, compact=True)
    return out.getvalue()
