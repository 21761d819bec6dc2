"""Device tokens and the app's API, through a real `carecheck serve` process (httpx as the client)."""

from __future__ import annotations

import httpx

from core.couch import Couch
from core.settings import Settings
from sync_server import tokens
from sync_server.auth import Accounts
from tests.fieldapp.conftest import COLLABORATOR, PROVINCE, FieldServer


def _sign_in(base: str, name: str, password: str) -> httpx.Response:
    return httpx.post(f"{base}/app/api/session", json={"username": name, "password": password}, timeout=30)


def _accounts(server: FieldServer) -> Accounts:
    env = server.env
    s = Settings(
        couchdb_url=env["CARECHECK_COUCHDB_URL"],
        couchdb_user=env["CARECHECK_COUCHDB_USER"],
        couchdb_password=env["CARECHECK_COUCHDB_PASSWORD"],
        accounts_db=env["CARECHECK_ACCOUNTS_DB"],
        var_dir=env["CARECHECK_VAR_DIR"],
    )  # type: ignore[arg-type]
    return Accounts(Couch.from_settings(s), s)


def test_sign_in_token_sync_and_revocation(field_server: FieldServer) -> None:
    base = field_server.base
    bad = _sign_in(base, COLLABORATOR[0], "wrong-password")
    assert bad.status_code == 401 and "www-authenticate" not in bad.headers  # no browser password dialog
    assert bad.json()["detail_en"].startswith("Wrong user name or password")
    officer = _sign_in(base, *PROVINCE)
    assert officer.status_code == 403 and "collaborators" in officer.json()["detail_en"]

    r = _sign_in(base, *COLLABORATOR[:2])
    assert r.status_code == 201, r.text
    body = r.json()
    token, token_id = body["token"], body["token_id"]
    assert token.startswith("cct_") and body["account"] == {
        "name": COLLABORATOR[0],
        "role": "collaborator",
        "area": COLLABORATOR[2],
    }
    # Only a hash is stored: neither the token nor the password appears in the accounts database.
    raw = httpx.get(
        f"{field_server.env['CARECHECK_COUCHDB_URL']}/{field_server.env['CARECHECK_ACCOUNTS_DB']}"
        "/_all_docs?include_docs=true",
        auth=(field_server.env["CARECHECK_COUCHDB_USER"], field_server.env["CARECHECK_COUCHDB_PASSWORD"]),
        timeout=30,
    ).text
    assert token not in raw and token[4:] not in raw and COLLABORATOR[1] not in raw and token_id in raw

    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/sync/submissions", headers=bearer, timeout=30).status_code == 200
    forms = httpx.get(f"{base}/app/api/forms", headers=bearer, timeout=30).json()["forms"]
    # The web form comes from the same build as the OpenRosa form (same version and md5 hash as formList).
    form_list = httpx.get(f"{base}/formList", auth=COLLABORATOR[:2], timeout=30).text
    assert {f["form_id"] for f in forms} == {"household_child_check", "commune_facility_check"}
    for f in forms:
        assert f["hash"] in form_list and f["version"] in form_list
        assert f["enketo"]["languageMap"] == {
            "Tiếng Việt (vi)": "vi",
            "English (en)": "en",
            "ខ្មែរ (km)": "km",
        }
        assert 'lang="km"' in f["enketo"]["form"]
    assert httpx.get(f"{base}/app/api/forms", timeout=30).status_code == 401
    assert (
        httpx.get(
            f"{base}/sync/submissions", headers={"Authorization": "Bearer cct_nope"}, timeout=30
        ).status_code
        == 401
    )

    # A province officer revokes the phone's token: refused at once by this server.
    assert (
        httpx.delete(f"{base}/app/api/tokens/{token_id}", auth=COLLABORATOR[:2], timeout=30).status_code
        == 403
    )
    assert httpx.delete(f"{base}/app/api/tokens/{token_id}", auth=PROVINCE, timeout=30).json() == {
        "revoked": 1
    }
    refused = httpx.get(f"{base}/sync/submissions", headers=bearer, timeout=30)
    assert refused.status_code == 401 and "www-authenticate" not in refused.headers  # no browser dialog
    assert httpx.get(f"{base}/app/api/forms", headers=bearer, timeout=30).status_code == 401

    # The phone signs out: its own token is revoked.
    second = _sign_in(base, *COLLABORATOR[:2]).json()["token"]
    h2 = {"Authorization": f"Bearer {second}"}
    assert httpx.delete(f"{base}/app/api/session", headers=h2, timeout=30).status_code == 200
    assert httpx.get(f"{base}/sync/submissions", headers=h2, timeout=30).status_code == 401

    # The CLI lists tokens (never the token itself) and revokes every token of an account.
    third = _sign_in(base, *COLLABORATOR[:2]).json()["token"]
    assert tokens.verify(_accounts(field_server), third) is not None
    listed = field_server.cli("token", "list", "--user", COLLABORATOR[0])
    assert listed.returncode == 0 and listed.stdout.count(COLLABORATOR[0]) == 3 and third not in listed.stdout
    assert listed.stdout.count("revoked 20") == 2
    r = field_server.cli("token", "revoke", "--user", COLLABORATOR[0])
    assert r.returncode == 0 and "Revoked 1" in r.stdout, r.stdout + r.stderr
    tokens._cache.clear()
    assert tokens.verify(_accounts(field_server), third) is None
    r = field_server.cli("token", "revoke", "deadbeef0000")
    assert r.returncode == 1 and "No active device token" in r.stderr


def test_manifest_icons_and_shell(field_server: FieldServer) -> None:
    base = field_server.base
    m = httpx.get(f"{base}/app/manifest.webmanifest", timeout=30)
    assert m.headers["content-type"].startswith("application/manifest+json")
    manifest = m.json()
    assert manifest["start_url"] == "/app/" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        png = httpx.get(f"{base}{icon['src']}", timeout=30)
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "/app/app.js" in httpx.get(f"{base}/app/", timeout=30).text
    assert httpx.get(f"{base}/app", timeout=30, follow_redirects=False).status_code == 308
    assert "carecheck-app-" in httpx.get(f"{base}/app/sw.js", timeout=30).text
