"""Console pieces without servers: session cookies, CSRF tokens, the OData $filter subset, the ODK payload."""

from __future__ import annotations

import pytest

from console.odata import parse_filter
from console.odk import collect_settings, decode, payload
from console.pages.render import sparkline
from console.sessions import csrf_token, make_cookie, read_cookie
from core.errors import BadRequest

SECRET = b"k" * 32


def test_cookie_round_trip_and_forgery() -> None:
    cookie = make_cookie(SECRET, "qh_phuquoc", "sid1", now=1000.0)
    claims = read_cookie(SECRET, cookie)
    assert (
        claims is not None and claims["n"] == "qh_phuquoc" and claims["s"] == "sid1" and claims["t"] == 1000
    )
    assert claims["i"] == 1_000_000  # issue time in ms, kept on re-issue
    assert read_cookie(SECRET, make_cookie(SECRET, "x", "s", issued=5))["i"] == 5  # type: ignore[index]
    raw, _, sig = cookie.partition(".")
    forged = make_cookie(b"other-secret" * 3, "tinh_admin", "sid1")
    assert read_cookie(SECRET, forged) is None
    assert read_cookie(SECRET, raw + ".") is None
    assert read_cookie(SECRET, "not-base64!!." + sig) is None
    assert read_cookie(SECRET, "") is None


def test_csrf_token_is_per_session() -> None:
    assert csrf_token(SECRET, "a") != csrf_token(SECRET, "b")
    assert csrf_token(SECRET, "a") == csrf_token(SECRET, "a")
    assert csrf_token(b"x" * 32, "a") != csrf_token(SECRET, "a")


def test_odata_filter_subset() -> None:
    allowed = {"period", "org_unit", "level"}
    assert parse_filter("period eq '2026Q4'", allowed) == {"period": "2026Q4"}
    assert parse_filter("(level eq 'commune') and (period eq '2026')", allowed) == {
        "level": "commune",
        "period": "2026",
    }
    assert parse_filter("org_unit eq 'O''Brien'", allowed) == {"org_unit": "O'Brien"}
    assert parse_filter(None, allowed) == {}
    for bad in ("value gt 3", "period eq 2026", "secret eq 'x'", "period eq 'a' or level eq 'b'"):
        with pytest.raises(BadRequest) as exc:
            parse_filter(bad, allowed)
        assert exc.value.code == "odata_query_invalid"


def test_collect_payload_is_base64_zlib_json() -> None:
    settings = collect_settings("https://cc.example.vn", "ctv_01", "carecheck 911")
    text = payload(settings)
    assert decode(text) == settings
    assert set(settings) == {"general", "admin", "project"} and "password" not in settings["general"]
    assert decode(payload(collect_settings("u", "n", "p", "pw")))["general"]["password"] == "pw"


def test_sparkline() -> None:
    assert sparkline([None, 1.0]) == ""
    svg = sparkline([1.0, None, 3.0, 2.0])
    assert svg.startswith("<svg") and svg.count(",") == 3
