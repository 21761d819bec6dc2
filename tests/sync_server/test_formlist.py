"""formList, form download, manifest and media: exact namespaces, md5 of the bytes served, headers, auth."""

from __future__ import annotations

import hashlib
import time

import pytest
from lxml import etree

from tests.sync_server.conftest import Server
from tests.sync_server.helpers import md5, write_form

XL = "{http://openrosa.org/xforms/xformsList}"
MF = "{http://openrosa.org/xforms/xformsManifest}"


def test_form_list_download_and_manifest(server: Server) -> None:
    c = server.client
    r = c.get("/formList?deviceID=collect:abc", auth=server.auth())
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/xml; charset=utf-8"
    assert r.headers["x-openrosa-version"] == "1.0"
    assert r.headers["date"].endswith("GMT")
    root = etree.fromstring(r.content)
    assert root.tag == f"{XL}xforms" and root.nsmap == {None: "http://openrosa.org/xforms/xformsList"}
    (x,) = root.findall(f"{XL}xform")
    assert [e.tag[len(XL) :] for e in x] == [
        "formID",
        "name",
        "version",
        "hash",
        "downloadUrl",
        "manifestUrl",
    ]
    assert x.findtext(f"{XL}formID") == "hh_test"
    assert x.findtext(f"{XL}version") == "2026112901"
    assert x.findtext(f"{XL}downloadUrl") == "http://phone.test/forms/hh_test/form.xml"

    form = c.get(x.findtext(f"{XL}downloadUrl"), auth=server.auth())
    assert form.status_code == 200 and form.headers["content-type"] == "text/xml; charset=utf-8"
    assert x.findtext(f"{XL}hash") == "md5:" + hashlib.md5(form.content).hexdigest()
    built = server.settings.effective_forms_build_dir / "hh_test" / "2026112901" / "form.xml"
    assert form.content == built.read_bytes()

    m = c.get(x.findtext(f"{XL}manifestUrl"), auth=server.auth())
    assert m.status_code == 200 and m.headers["content-type"] == "text/xml; charset=utf-8"
    mroot = etree.fromstring(m.content)
    assert mroot.tag == f"{MF}manifest" and mroot.nsmap == {None: "http://openrosa.org/xforms/xformsManifest"}
    (mf,) = mroot.findall(f"{MF}mediaFile")
    assert mf.findtext(f"{MF}filename") == "itemsets.csv"
    media = c.get(mf.findtext(f"{MF}downloadUrl"), auth=server.auth())
    assert media.status_code == 200 and media.content == b"list_name,name,label\nx,1,One\n"
    assert mf.findtext(f"{MF}hash") == md5(media.content)


def test_form_list_filter_and_no_manifest_without_media(server: Server) -> None:
    write_form(server.settings.effective_forms_build_dir, form_id="facility_test", version="1")
    r = server.client.get("/formList", auth=server.auth())
    ids = [e.text for e in etree.fromstring(r.content).iter(f"{XL}formID")]
    assert ids == ["facility_test", "hh_test"]
    r = server.client.get("/formList?formID=facility_test", auth=server.auth())
    (x,) = etree.fromstring(r.content).findall(f"{XL}xform")
    assert x.findtext(f"{XL}formID") == "facility_test"
    assert x.find(f"{XL}manifestUrl") is None
    r = server.client.get("/forms/nope/form.xml", auth=server.auth())
    assert r.status_code == 404 and b"OpenRosaResponse" in r.content


def test_auth_challenge_digest_and_basic(server: Server) -> None:
    c = server.client
    r = c.get("/formList")
    assert r.status_code == 401
    challenges = r.headers.get_list("www-authenticate")
    assert any(v.startswith('Digest realm="carecheck", qop="auth"') for v in challenges)
    assert any(v.startswith("Basic ") for v in challenges)
    assert r.headers["x-openrosa-version"] == "1.0"
    assert b"http://openrosa.org/http/response" in r.content
    assert c.get("/formList", auth=("ctv_pq", "mat-khau-123")).status_code == 200  # Basic
    assert c.get("/formList", auth=("ctv_pq", "mat-khau-123")).status_code == 200  # Basic, cached
    assert c.get("/formList", auth=("ctv_pq", "wrong-password")).status_code == 401
    wrong = c.get("/formList", auth=server.auth("nobody"))
    assert wrong.status_code == 401 and "Sai tên đăng nhập" in wrong.text
    assert c.get("/formList", auth=server.auth()).status_code == 200  # Digest


def _digest_header(nonce: str, uri: str, method: str = "GET", password: str = "mat-khau-123") -> str:
    ha1 = hashlib.md5(f"ctv_pq:carecheck:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    resp = hashlib.md5(f"{ha1}:{nonce}:00000001:abc:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="ctv_pq", realm="carecheck", nonce="{nonce}", uri="{uri}", qop=auth, '
        f'nc=00000001, cnonce="abc", response="{resp}"'
    )


def test_digest_by_hand_stale_nonce_and_wrong_uri(server: Server) -> None:
    from sync_server.auth import load_secret, make_nonce

    secret = load_secret(server.settings)
    instance = server.client.app.state.ctx.nonces.instance  # type: ignore[attr-defined]
    fresh = make_nonce(secret, instance=instance)
    c = server.client
    ok = c.get("/formList", headers={"Authorization": _digest_header(fresh, "/formList")})
    assert ok.status_code == 200
    # The same header again (same nonce, same nc): a replay, refused with a fresh challenge (stale=true).
    again = c.get("/formList", headers={"Authorization": _digest_header(fresh, "/formList")})
    assert again.status_code == 401
    assert any("stale=true" in v for v in again.headers.get_list("www-authenticate"))
    # A nonce another server process issued (or this one before a restart) is stale here.
    other = make_nonce(secret, instance="another-process")
    r = c.get("/formList", headers={"Authorization": _digest_header(other, "/formList")})
    assert r.status_code == 401 and any("stale=true" in v for v in r.headers.get_list("www-authenticate"))
    fresh = make_nonce(secret, instance=instance)
    # The same answer replayed for another resource is refused.
    assert (
        c.get(
            "/forms/hh_test/form.xml", headers={"Authorization": _digest_header(fresh, "/formList")}
        ).status_code
        == 401
    )
    # An old nonce signed by us: 401 with stale=true, so the phone retries without asking for the password.
    old = make_nonce(secret, now=time.time() - 3600, instance=instance)
    r = c.get("/formList", headers={"Authorization": _digest_header(old, "/formList")})
    assert r.status_code == 401
    assert any("stale=true" in v for v in r.headers.get_list("www-authenticate"))
    forged = make_nonce(b"not-our-secret")
    r = c.get("/formList", headers={"Authorization": _digest_header(forged, "/formList")})
    assert r.status_code == 401 and not any("stale" in v for v in r.headers.get_list("www-authenticate"))


def test_unexpected_error_gets_envelope_and_headers(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> list[object]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(server.client.app.state.ctx.forms, "current", boom)
    r = server.client.get("/formList", auth=server.auth())
    assert r.status_code == 500 and r.headers["x-openrosa-version"] == "1.0"
    assert b"OpenRosaResponse" in r.content and b"disk on fire" not in r.content


def test_envelopes_by_audience(server: Server) -> None:
    c = server.client
    phone = c.get("/odk/formList", auth=server.auth())  # a phone set up with a wrong path prefix
    assert phone.status_code == 404 and phone.headers["content-type"] == "text/xml; charset=utf-8"
    assert b"OpenRosaResponse" in phone.content
    api = c.get("/api/v1/nothing-here", auth=server.auth("tinh"))
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    assert api.json()["status"] == 404 and api.headers["x-openrosa-version"] == "1.0"
