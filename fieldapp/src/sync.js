// Replication of the collaborator's finished records to the server's /sync/submissions (CouchDB protocol).
// One doc per batch: on a bad link every request stays small, and a cut loses at most one batch, which the
// checkpoint makes the next run resend (the server keeps one doc per instanceID, so a resend is a no-op).
import { outboxDb, getLocal, putLocal, PouchDB } from './store.js';

export const BATCH_SIZE = 1;

export function remoteFor(token) {
  return new PouchDB(`${location.origin}/sync/submissions`, {
    skip_setup: true,
    fetch: (url, opts) => {
      opts.headers.set('Authorization', `Bearer ${token}`);
      return PouchDB.fetch(url, opts);
    },
  });
}

export async function syncState() {
  return getLocal('sync', { sent: {}, refused: {}, last_success: null, last_error: null, last_error_at: null });
}

export async function pending() {
  const state = await syncState();
  const all = await outboxDb.allDocs();
  return all.rows.map((r) => r.id).filter((id) => !state.sent[id] && !state.refused[id]);
}

// What the phone keeps of a refused record: the write rule's code (shown in the app's language, i18n.js
// refusalText) and the server's own words in Vietnamese and English.
function refusal(e, fallback) {
  const en = String(e.reason || e.message || fallback);
  return { code: e.reason_code || null, vi: e.reason_vi ? String(e.reason_vi) : null, en };
}

let running = null;
let again = null;

// Push once; resolves to {written, refused, error}. The state on the phone says what really happened.
// A push asked for while one runs (a record finished meanwhile is not in the running push's list) runs once
// more after it; every caller asking meanwhile shares that second push and hears its result.
export function pushOnce(token) {
  if (running) {
    if (!again) again = running.catch(() => null).then(() => { again = null; return pushOnce(token); });
    return again;
  }
  running = (async () => {
    const state = await syncState();
    const result = { written: 0, refused: 0, error: null, status: null };
    // Every record on the phone now is on the server once a one-shot push completes: written now, or found
    // there already (a batch whose answer was lost, which revs_diff skips) — unless the server refused it.
    const before = (await outboxDb.allDocs()).rows.map((r) => r.id);
    try {
      const rep = outboxDb.replicate.to(remoteFor(token), { batch_size: BATCH_SIZE, retry: false });
      rep.on('change', (info) => {
        const denied = new Set((info.errors || []).map((e) => e.id).filter(Boolean));
        for (const d of info.docs || []) if (!denied.has(d._id)) state.sent[d._id] = new Date().toISOString();
      });
      rep.on('denied', (err) => {
        if (err && err.id) state.refused[err.id] = refusal(err, 'forbidden');
        result.refused += 1;
      });
      const info = await rep;
      result.written = Math.max(0, info.docs_written - (info.doc_write_failures || 0));
      result.status = info.status;
      for (const e of info.errors || []) if (e.id && !state.refused[e.id]) {
        state.refused[e.id] = refusal(e, 'refused');
        delete state.sent[e.id];
      }
      for (const id of before) if (!state.refused[id] && !state.sent[id]) state.sent[id] = new Date().toISOString();
      state.last_success = new Date().toISOString();
      state.last_result = { written: info.docs_written, read: info.docs_read, failures: info.doc_write_failures };
    } catch (e) {
      result.error = e;
      result.status = e && e.status;
      state.last_error = e && e.status === 401 ? 'revoked' : e && e.status ? `server:${e.status} ${e.reason || e.message || ''}` : 'network';
      state.last_error_at = new Date().toISOString();
    }
    await putLocal('sync', state);
    return result;
  })().finally(() => {
    running = null;
  });
  return running;
}
