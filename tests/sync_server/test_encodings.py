"""XML declared as UTF-16 (with a BOM), ISO-8859-1 or UTF-8 with a BOM: stored as UTF-8, read back exactly."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.sync_server.conftest import Server
from tests.sync_server.helpers import parts

HAMLET = "Ấp Đông Hưng – Tà Lơn"  # Vietnamese: not in ISO-8859-1
LATIN = "Mui Nai café à côté"


def _xml(iid: str, hamlet: str, encoding: str) -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        f'<data id="hh_test" version="2026112901"><district>911</district><commune>31078</commune>'
        f"<hamlet>{hamlet}</hamlet><house_photo/><child><child_name>Lâm</child_name><imm_card_photo/></child>"
        f"<meta><instanceID>{iid}</instanceID></meta></data>"
    )


CASES = {
    "utf-16 with BOM": (HAMLET, "UTF-16", lambda t: t.encode("utf-16")),
    "utf-16le with BOM": (HAMLET, "UTF-16", lambda t: b"\xff\xfe" + t.encode("utf-16-le")),
    "utf-16be with BOM": (HAMLET, "UTF-16", lambda t: b"\xfe\xff" + t.encode("utf-16-be")),
    "iso-8859-1": (LATIN, "ISO-8859-1", lambda t: t.encode("latin-1")),
    "utf-8 with BOM": (HAMLET, "UTF-8", lambda t: b"\xef\xbb\xbf" + t.encode("utf-8")),
    "utf-8": (HAMLET, "UTF-8", lambda t: t.encode("utf-8")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_declared_encoding_is_honoured(server: Server, name: str) -> None:
    hamlet, declared, encode = CASES[name]
    iid = f"uuid:{uuid.uuid4()}"
    raw = encode(_xml(iid, hamlet, declared))
    r = server.client.post("/submission", files=parts(raw), auth=server.auth())
    assert r.status_code == 201, r.text
    doc = server.doc(iid)
    assert doc is not None
    # Stored as UTF-8 text whose declaration says so; every reader parses doc["xml"].encode("utf-8").
    assert f"<hamlet>{hamlet}</hamlet>" in doc["xml"] and 'encoding="UTF-8"' in doc["xml"]
    assert doc["xml_sha256"] == hashlib.sha256(doc["xml"].encode()).hexdigest()
    if name == "utf-8":
        assert doc["xml"].encode() == raw and "original_sha256" not in doc  # byte for byte
    else:
        assert doc["original_sha256"] == hashlib.sha256(raw).hexdigest() and doc["original_encoding"]
    # Read back exactly through the operator API (the answers, not mojibake).
    fields = server.client.get(f"/api/v1/submissions/{iid}", auth=server.auth("tinh")).json()["fields"]
    assert fields["hamlet"] == hamlet and fields["child"][0]["child_name"] == "Lâm"
    # The same bytes again are a resend, not a conflict.
    assert server.client.post("/submission", files=parts(raw), auth=server.auth()).status_code == 202


def test_ingestion_reads_the_stored_text(server: Server) -> None:
    from aggregator.ingest import instance_dict

    iid = f"uuid:{uuid.uuid4()}"
    raw = _xml(iid, HAMLET, "UTF-16").encode("utf-16")
    assert server.client.post("/submission", files=parts(raw), auth=server.auth()).status_code == 201
    doc = server.doc(iid)
    assert doc is not None
    assert instance_dict(doc["xml"], "hh_test")["hamlet"] == HAMLET
