// A phone running a PouchDB app: saves submissions offline, syncs when the server appears, tries to cheat.
// Usage: node device.js <sync url> <user> <password> <dir> <area> <other-area doc id> <colleague's doc id>
'use strict';
const crypto = require('crypto');
const PouchDB = require('pouchdb-node');

const [base, user, password, dir, area, otherId, colleagueId] = process.argv.slice(2);
const sha256 = (s) => crypto.createHash('sha256').update(s, 'utf8').digest('hex');

function submission(i, docArea, id = 'uuid:' + crypto.randomUUID(), deprecatedId = null) {
  const dep = deprecatedId ? `<deprecatedID>${deprecatedId}</deprecatedID>` : '';
  const xml = `<household_child_check id="household_child_check" version="2026112901"><end>2026-11-29T08:0${i}:00.000+07:00</end><commune>${docArea}</commune><meta><instanceID>${id}</instanceID>${dep}</meta></household_child_check>`;
  return { _id: id, type: 'submission', form_id: 'household_child_check', form_version: '2026112901', xml,
           xml_sha256: sha256(xml), deprecated_id: deprecatedId, submitted_by: user, device_id: 'pouchdb:test',
           received_at: new Date().toISOString(), received_by: 'device:' + user, area: docArea,
           org_unit: null, attachments_expected: [] };
}

async function waitForServer() {
  for (let i = 0; i < 200; i++) {
    try { const r = await fetch(base + '/sync/'); if (r.status === 200 || r.status === 401) return i; } catch (e) { /* offline */ }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  throw new Error('server never appeared');
}

(async () => {
  const local = new PouchDB(dir + '/phone');
  const own = [0, 1, 2, 3, 4].map((i) => submission(i, area));
  const foreign = submission(9, '99999');               // another area: must be refused
  await local.bulkDocs(own.concat([foreign]));
  const polls = await waitForServer();
  const auth = { username: user, password };
  const remote = new PouchDB(base + '/sync/submissions', { auth, skip_setup: true });
  const push = await local.replicate.to(remote);
  // Pull into a fresh database: only this area's records may arrive.
  const fresh = new PouchDB(dir + '/phone2');
  const pull = await fresh.replicate.from(remote);
  const pulled = await fresh.allDocs({ include_docs: true });
  let direct = null;
  try { await remote.get(otherId); direct = 'readable'; } catch (e) { direct = e.status; }
  let wrong = null;
  try {
    const bad = new PouchDB(base + '/sync/submissions', { auth: { username: user, password: 'wrong-pass' }, skip_setup: true });
    await bad.get(own[0]._id); wrong = 'accepted';
  } catch (e) { wrong = e.status; }
  // Forms: pulled read-only from /sync/forms; writing there is refused.
  const formsRemote = new PouchDB(base + '/sync/forms', { auth, skip_setup: true });
  const forms = new PouchDB(dir + '/phone-forms');
  await forms.replicate.from(formsRemote);
  const formIds = (await forms.allDocs()).rows.map((r) => r.id);
  const formPush = await forms.replicate.to(formsRemote).catch((e) => ({ error: e.status }));
  // A second push sends nothing new: the checkpoint holds.
  const again = await local.replicate.to(remote);
  // Cheating: records under another district's id and a colleague's id (as new local docs, and as a forged
  // higher revision with new_edits:false), and an edit superseding the colleague's record. All refused.
  const cheat = new PouchDB(dir + '/phone-cheat');
  await cheat.bulkDocs([submission(7, area, otherId), submission(8, area, colleagueId),
                        submission(6, area, undefined, colleagueId)]);
  const cheatPush = await cheat.replicate.to(remote);
  const forged = Object.assign(submission(5, area, colleagueId), { _rev: '9-ffffffffffffffffffffffffffffffff' });
  const forgedRes = await remote.bulkDocs([forged], { new_edits: false });
  console.log(JSON.stringify({
    polls, own: own.map((d) => d._id), foreign: foreign._id,
    push: { docs_written: push.docs_written, doc_write_failures: push.doc_write_failures },
    again: { docs_read: again.docs_read, docs_written: again.docs_written },
    pulled: pulled.rows.map((r) => ({ id: r.id, area: r.doc.area })),
    pull_written: pull.docs_written, direct_other: direct, wrong_password: wrong,
    form_ids: formIds, form_push: formPush.error || formPush.doc_write_failures,
    cheat: { docs_written: cheatPush.docs_written, doc_write_failures: cheatPush.doc_write_failures },
    forged: forgedRes.map((r) => r.error || 'written'),
  }));
})().catch((e) => { console.error('device failed:', e && (e.stack || JSON.stringify(e))); process.exit(1); });
