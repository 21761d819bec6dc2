// What the phone keeps (PouchDB in the browser's IndexedDB): forms, drafts, finished records, session, sync state.
import PouchDB from 'pouchdb-browser';

export const formsDb = new PouchDB('carecheck-forms');
export const draftsDb = new PouchDB('carecheck-drafts');
// Finished records: submission documents of exactly the OpenRosa path's shape (docs/contracts.md §3),
// replicated to /sync/submissions. Never modified after creation (the server keeps them append-only).
export const outboxDb = new PouchDB('carecheck-outbox');
const metaDb = new PouchDB('carecheck-meta');

export async function getLocal(name, fallback = null) {
  try {
    return await metaDb.get(`_local/${name}`);
  } catch (e) {
    if (e.status === 404) return fallback;
    throw e;
  }
}

export async function putLocal(name, value) {
  for (let i = 0; i < 5; i++) {
    const old = await getLocal(name);
    try {
      return await metaDb.put({ ...value, _id: `_local/${name}`, _rev: old ? old._rev : undefined });
    } catch (e) {
      if (e.status !== 409) throw e;
    }
  }
  throw new Error('could not save ' + name);
}

export async function removeLocal(name) {
  const old = await getLocal(name);
  if (old) await metaDb.remove(old);
}

export function isQuotaError(e) {
  const text = String((e && (e.name || '') + ' ' + (e.message || '') + ' ' + (e.reason || '')) || '');
  return /quota/i.test(text);
}

export async function sha256Hex(text) {
  const data = new TextEncoder().encode(text);
  const digest = await crypto.subtle.digest('SHA-256', data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export { PouchDB };
