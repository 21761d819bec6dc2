"""ODK Collect's settings QR code: base64(zlib(JSON)) of {"general", "admin", "project"} (what Collect scans
under Project → Add project → Configure with QR code; keys left out are reset to their defaults).
https://docs.getodk.org/collect-import-export/ ; the same payload is shown as text for typing or copying."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import segno


def collect_settings(
    server_url: str, username: str, project: str, password: str | None = None
) -> dict[str, Any]:
    general: dict[str, Any] = {
        "server_url": server_url,
        "username": username,
        "form_update_mode": "match_exactly",
        "autosend": "wifi_and_cellular",
    }
    if password:
        general["password"] = password
    return {"general": general, "admin": {}, "project": {"name": project, "icon": "C", "color": "#12355b"}}


def payload(settings: dict[str, Any]) -> str:
    """The text the QR code carries."""
    raw = json.dumps(settings, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


def decode(text: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(text)))
    return out


def qr_svg(text: str) -> str:
    """An inline SVG of the QR code (error correction M: printed and photographed codes survive smudges)."""
    return str(
        segno.make(text, error="m", micro=False).svg_inline(
            scale=5, border=4, omitsize=True, title="ODK Collect"
        )
    )
