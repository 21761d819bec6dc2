"""The OpenRosa sync server: forms to phones, submissions into CouchDB, a small operator API.

Run it with ``carecheck serve --host 0.0.0.0 --port 8000``; a phone's server URL is the base URL.

Phones (ODK Collect, KoboCollect, Enketo), Digest or Basic auth, any active account:
  GET  /formList[?formID=]                 forms and their md5 hashes
  GET  /forms/{id}/form.xml[?version=]     the exact bytes hashed
  GET  /forms/{id}/manifest, /forms/{id}/media/{file}   only for forms with media or itemsets
  HEAD /submission                         204 + X-OpenRosa-Accept-Content-Length
  POST /submission                         201 new, 202 already received (201 if it added attachments),
                                           400 structure, 404 unknown form/version/deprecatedID, 409 same
                                           instanceID with other XML, 413 too large, 503 store down
Officers (district: their area; province: all; collaborators 403):
  GET  /api/v1/submissions?form_id=&since=&limit=   {items, next}; since = ISO time or the `next` cursor
  GET  /api/v1/submissions/{instance_id}            answers, attachments, status, version chain
  GET  /api/v1/devices                              last contact / submission per device and collaborator

Accounts: ``carecheck user add NAME --password P --role collaborator|district|province [--area CODE]``,
``user list``, ``user disable NAME`` (effective within 30 s). Settings: CARECHECK_MAX_SUBMISSION_BYTES,
CARECHECK_REALM, CARECHECK_PUBLIC_URL (base URL behind a proxy), CARECHECK_NODE_NAME, CouchDB ones.
"""
