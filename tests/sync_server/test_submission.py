"""HEAD/POST /submission: new, duplicate, split upload, conflict, edit, unknown form/version, bad input."""

from __future__ import annotations

import threading
import uuid

import httpx
from lxml import etree

from tests.sync_server.conftest import Server
from tests.sync_server.helpers import instance, parts, write_form

NS = "{http://openrosa.org/http/response}"
PHOTO_A = b"\xff\xd8jpeg-A" * 100
PHOTO_B = b"\xff\xd8jpeg-B" * 100


def post(
    server: Server,
    xml: bytes | None,
    files: dict[str, bytes] | None = None,
    user: str = "ctv_pq",
    device: str = "collect:dev1",
) -> httpx.Response:
    return server.client.post(
        f"/submission?deviceID={device}", files=parts(xml, files), auth=server.auth(user)
    )


def message(r: httpx.Response) -> str:
    root = etree.fromstring(r.content)
    assert root.tag == f"{NS}OpenRosaResponse"
    assert r.headers["content-type"] == "text/xml; charset=utf-8"
    assert r.headers["x-openrosa-version"] == "1.0"
    return str(root.findtext(f"{NS}message"))


def test_head_204(server: Server) -> None:
    r = server.client.head("/submission", auth=server.auth())
    assert r.status_code == 204
    assert r.headers["x-openrosa-accept-content-length"] == "200000"
    assert r.headers["x-openrosa-version"] == "1.0" and "date" in r.headers
    assert server.client.head("/submission").status_code == 401


def test_new_then_identical_resend(server: Server) -> None:
    iid = f"uuid:{uuid.uuid4()}"
    xml = instance(instance_id=iid, house_photo="house.jpg")
    r = post(server, xml, {"house.jpg": PHOTO_A})
    assert r.status_code == 201, r.text
    assert "Đã gửi thành công" in message(r)
    doc = server.doc(iid)
    assert doc is not None
    assert doc["xml"].encode() == xml and doc["form_id"] == "hh_test" and doc["form_version"] == "2026112901"
    assert doc["submitted_by"] == "ctv_pq" and doc["device_id"] == "collect:dev1" and doc["area"] == "31078"
    assert doc["org_unit"] == ["91", "911", "31078"] and doc["received_by"] == "province"
    assert doc["attachments_expected"] == ["house.jpg"] and doc["deprecated_id"] is None
    assert doc["received_at"].endswith("Z") and len(doc["xml_sha256"]) == 64
    assert list(doc["_attachments"]) == ["house.jpg"]
    rev = doc["_rev"]
    # The response was lost; the phone sends again (twice): acknowledged, nothing stored twice.
    for _ in range(2):
        again = post(server, xml, {"house.jpg": PHOTO_A})
        assert again.status_code == 202 and "Đã nhận trước đó" in message(again)
    assert server.doc(iid)["_rev"] == rev
    rows = server.couch.all_docs(server.settings.submissions_db)["rows"]
    assert [r["id"] for r in rows if not r["id"].startswith("_design")] == [iid]


def test_concurrent_identical_posts_make_one_record(server: Server) -> None:
    iid = f"uuid:{uuid.uuid4()}"
    xml = instance(instance_id=iid, house_photo="house.jpg")
    statuses: list[int] = []

    def send() -> None:
        statuses.append(post(server, xml, {"house.jpg": PHOTO_A}).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses).count(201) == 1 and set(statuses) <= {201, 202}, statuses
    doc = server.doc(iid)
    assert doc["_rev"].startswith("1-")


def test_split_upload_merges_attachments(server: Server) -> None:
    iid = f"uuid:{uuid.uuid4()}"
    xml = instance(instance_id=iid, house_photo="house.jpg", card_photos=["card1.jpg"])
    assert post(server, xml, {"house.jpg": PHOTO_A}).status_code == 201
    second = post(server, xml, {"card1.jpg": PHOTO_B})
    assert second.status_code == 201 and "bổ sung 1" in message(second)
    doc = server.doc(iid)
    assert sorted(doc["_attachments"]) == ["card1.jpg", "house.jpg"]
    assert server.couch.get_attachment(server.settings.submissions_db, iid, "card1.jpg") == PHOTO_B
    # Resending the second part again changes nothing.
    assert post(server, xml, {"card1.jpg": PHOTO_B}).status_code == 202
    assert server.doc(iid)["_rev"] == doc["_rev"]


def test_same_instance_id_different_xml_is_409_and_first_kept(server: Server) -> None:
    iid = f"uuid:{uuid.uuid4()}"
    first = instance(instance_id=iid, hamlet="Ấp 1")
    assert post(server, first).status_code == 201
    r = post(server, instance(instance_id=iid, hamlet="Ấp 2"))
    assert r.status_code == 409 and "giữ bản đầu tiên" in message(r)
    assert server.doc(iid)["xml"].encode() == first


def test_edit_with_deprecated_id_carries_attachments_forward(server: Server) -> None:
    old_id, new_id = f"uuid:{uuid.uuid4()}", f"uuid:{uuid.uuid4()}"
    old = instance(instance_id=old_id, house_photo="house.jpg", card_photos=["card1.jpg"])
    assert post(server, old, {"house.jpg": PHOTO_A, "card1.jpg": PHOTO_B}).status_code == 201
    # Collect resends only changed media: the edit references house.jpg and card1.jpg, resends neither.
    edit = instance(
        instance_id=new_id,
        deprecated_id=old_id,
        hamlet="Ấp 3",
        house_photo="house.jpg",
        card_photos=["card1.jpg"],
    )
    r = post(server, edit)
    assert r.status_code == 201, r.text
    new_doc, old_doc = server.doc(new_id), server.doc(old_id)
    assert new_doc["deprecated_id"] == old_id and old_doc is not None
    assert sorted(new_doc["_attachments"]) == ["card1.jpg", "house.jpg"]
    assert server.couch.get_attachment(server.settings.submissions_db, new_id, "house.jpg") == PHOTO_A
    rows = server.couch.view(server.settings.submissions_db, "carecheck", "by_deprecated", key=old_id)["rows"]
    assert [r["id"] for r in rows] == [new_id]


def test_unknown_deprecated_id_is_404(server: Server) -> None:
    r = post(server, instance(deprecated_id=f"uuid:{uuid.uuid4()}"))
    assert r.status_code == 404 and "phiếu gốc" in message(r)


def test_unknown_form_and_old_versions(server: Server) -> None:
    build = server.settings.effective_forms_build_dir
    r = post(server, instance(form_id="no_such_form"))
    assert r.status_code == 404 and "cập nhật biểu mẫu" in message(r)
    r = post(server, instance(version="1999010101"))
    assert r.status_code == 404 and "Phiên bản biểu mẫu đã cũ — hãy cập nhật biểu mẫu" in message(r)
    # A new version becomes current; submissions against the old build stay accepted.
    write_form(build, version="2026120101")
    assert post(server, instance(version="2026112901")).status_code == 201
    assert post(server, instance(version="2026120101")).status_code == 201


def test_structural_errors_are_400_and_nothing_stored(server: Server) -> None:
    cases = {
        "missing xml part": post(server, None, {"house.jpg": PHOTO_A}),
        "malformed": post(server, b"<data id='hh_test'><meta><instanceID>uuid:x</instanceID></meta>"),
        "no instanceID": post(server, b"<data id='hh_test' version='2026112901'><hamlet>1</hamlet></data>"),
        "billion laughs": post(
            server,
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b'<data id="hh_test"><hamlet>&lol2;</hamlet><meta><instanceID>uuid:b</instanceID>'
            b"</meta></data>",
        ),
        "xxe": post(
            server,
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<data id="hh_test"><hamlet>&x;</hamlet><meta><instanceID>uuid:c</instanceID></meta></data>',
        ),
        "path attachment": post(server, instance(house_photo="a.jpg"), {"../../etc/a.jpg": PHOTO_A}),
        "reserved name": post(server, instance(house_photo="_a.jpg"), {"_a.jpg": PHOTO_A}),
        "dir name": post(server, instance(house_photo="a.jpg"), {"photos/a.jpg": PHOTO_A}),
        "not multipart": server.client.post("/submission", content=b"<data/>", auth=server.auth()),
    }
    for what, r in cases.items():
        assert r.status_code == 400, (what, r.status_code, r.text)
        assert message(r), what
    assert "passwd" not in cases["xxe"].text
    rows = server.couch.all_docs(server.settings.submissions_db)["rows"]
    assert [r["id"] for r in rows if not r["id"].startswith("_design")] == []


def test_answers_never_rejected(server: Server) -> None:
    # Nonsense answers (unknown district/commune codes, odd text) are stored; org_unit is simply not derived.
    iid = f"uuid:{uuid.uuid4()}"
    r = post(server, instance(instance_id=iid, district="999", commune="hòn đảo", hamlet="<>&\"'"))
    assert r.status_code == 201
    assert server.doc(iid)["org_unit"] is None


def test_413_declared_and_chunked(server: Server) -> None:
    big = b"x" * 250_000
    r = post(server, instance(house_photo="big.jpg"), {"big.jpg": big})
    assert r.status_code == 413 and "quá lớn" in message(r)
    # Chunked: no Content-Length, the server counts while reading.
    boundary = "bnd"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="xml_submission_file"; '
            f'filename="s.xml"\r\nContent-Type: text/xml\r\n\r\n'
        ).encode()
        + instance()
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="big.jpg"; filename="big.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(body), 16_384):
            yield body[i : i + 16_384]

    r = server.client.post(
        "/submission",
        content=chunks(),
        auth=("ctv_pq", "mat-khau-123"),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413
    rows = server.couch.all_docs(server.settings.submissions_db)["rows"]
    assert [r["id"] for r in rows if not r["id"].startswith("_design")] == []
    # A chunked body under the limit is accepted.
    small = body.replace(big, b"y" * 1000)

    r = server.client.post(
        "/submission",
        content=iter([small[:500], small[500:]]),
        auth=("ctv_pq", "mat-khau-123"),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 201, r.text


def test_encrypted_submission_stored_with_its_enc_parts(server: Server) -> None:
    # What Collect sends for a form with base64RsaPublicKey: a manifest plus the encrypted files.
    iid = f"uuid:{uuid.uuid4()}"
    ns = "http://www.opendatakit.org/xforms/encrypted"
    root = etree.Element(
        f"{{{ns}}}data", id="hh_test", version="2026112901", encrypted="yes", nsmap={None: ns}
    )
    etree.SubElement(root, f"{{{ns}}}base64EncryptedKey").text = "a2V5"
    etree.SubElement(etree.SubElement(root, f"{{{ns}}}meta"), f"{{{ns}}}instanceID").text = iid
    etree.SubElement(etree.SubElement(root, f"{{{ns}}}media"), f"{{{ns}}}file").text = "house.jpg.enc"
    etree.SubElement(root, f"{{{ns}}}encryptedXmlFile").text = "submission.xml.enc"
    etree.SubElement(root, f"{{{ns}}}base64EncryptedElementSignature").text = "c2ln"
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    r = post(server, xml, {"submission.xml.enc": b"\x00enc-xml", "house.jpg.enc": b"\x00enc-jpg"})
    assert r.status_code == 201, r.text
    doc = server.doc(iid)
    assert doc["attachments_expected"] == ["house.jpg.enc", "submission.xml.enc"]
    assert sorted(doc["_attachments"]) == ["house.jpg.enc", "submission.xml.enc"]
