// carecheck field web app: sign in once, fill forms offline with Enketo, keep drafts and finished records in
// PouchDB, send finished records to /sync/submissions when the network allows. See fieldapp/README.md.
import $ from 'jquery';
import { Form } from 'enketo-core';
import events from 'enketo-core/src/js/event';
import fileManager from 'enketo/file-manager';
import { LANGS, t, setLang, lang, refusalText } from './i18n.js';
import { formsDb, draftsDb, outboxDb, getLocal, putLocal, removeLocal, isQuotaError, sha256Hex } from './store.js';
import { pending, pushOnce, syncState } from './sync.js';

const API = `${location.origin}/app/api`;
const root = document.getElementById('app');
let session = null; // {token, token_id, name, role, area}
let open = null; // {form, formDoc, draftId, files}
let notice = null; // [text key, params]: shown once on the next screen, in the current language

// ---------- small helpers ----------
const esc = (s) => String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString(lang() === 'km' ? 'km-KH' : lang() === 'en' ? 'en-GB' : 'vi-VN') : t('never'));
const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
  const r = (Math.random() * 16) | 0; return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
}));

async function api(path, { method = 'GET', body = null, token = session && session.token } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${API}${path}`, { method, headers, body: body ? JSON.stringify(body) : null, cache: 'no-store' });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { status: r.status, ok: r.ok, data };
}

function problemText(data) {
  if (!data) return '';
  return lang() === 'vi' ? data.detail || data.title || '' : data.detail_en || data.detail || data.title || '';
}

// ---------- session ----------
async function signIn(username, password) {
  let r;
  try {
    r = await api('/session', { method: 'POST', body: { username, password }, token: null });
  } catch (e) {
    return t('need_network');
  }
  if (r.status === 401) return t('err_wrong_login');
  if (!r.ok) return problemText(r.data) || t('err_server', { e: r.status });
  session = { token: r.data.token, token_id: r.data.token_id, ...r.data.account };
  await putLocal('session', { ...session, clock_offset_ms: clockOffset(r.data.server_time) });
  await refreshForms();
  return null;
}

function clockOffset(serverTime) {
  return serverTime ? Date.parse(serverTime) - Date.now() : 0;
}

async function signOut() {
  if (session && navigator.onLine) {
    try { await api('/session', { method: 'DELETE' }); } catch (e) { /* offline: the officer can revoke */ }
  }
  await removeLocal('session');
  session = null;
  render();
}

// ---------- forms ----------
async function refreshForms() {
  if (!session || !navigator.onLine) return;
  let r;
  try { r = await api('/forms'); } catch (e) { return; }
  if (r.status === 401) {
    await putLocal('session', { ...session, revoked: true });
    session.revoked = true;
    return;
  }
  if (!r.ok) return;
  const s = await getLocal('session');
  if (s) await putLocal('session', { ...s, clock_offset_ms: clockOffset(r.data.server_time) });
  const existing = await formsDb.allDocs({ include_docs: true });
  const byId = new Map(existing.rows.map((row) => [row.id, row.doc]));
  const currentIds = new Set();
  for (const f of r.data.forms) {
    const _id = `form:${f.form_id}:${f.version}`;
    currentIds.add(_id);
    const old = byId.get(_id);
    if (!old) {
      await formsDb.put({ _id, ...f, current: true });
    } else if (!old.current) {
      await formsDb.put({ ...old, current: true });
    }
  }
  // Older versions stay on the phone while a draft needs them (a withdrawn version must not lose a draft).
  const drafts = await draftsDb.allDocs({ include_docs: true });
  const finished = await outboxDb.allDocs({ include_docs: true });
  const needed = new Set([...drafts.rows, ...finished.rows].map((d) => `form:${d.doc.form_id}:${d.doc.form_version}`));
  for (const [id, doc] of byId) {
    if (currentIds.has(id)) continue;
    if (needed.has(id)) { if (doc.current) await formsDb.put({ ...doc, current: false }); }
    else await formsDb.remove(doc);
  }
}

async function currentForms() {
  const all = await formsDb.allDocs({ include_docs: true });
  return all.rows.map((r) => r.doc).filter((d) => d.current);
}

// ---------- views ----------
function header() {
  const langs = LANGS.map((l) => `<option value="${l.code}"${l.code === lang() ? ' selected' : ''}>${esc(l.name)}</option>`).join('');
  return `<header class="bar"><h1>${esc(t('title'))}</h1>
    <label class="lang"><span class="sr">${esc(t('language'))}</span><select id="ui-lang" aria-label="${esc(t('language'))}">${langs}</select></label></header>`;
}

function bindHeader() {
  $('#ui-lang').on('change', async (e) => {
    setLang(e.target.value);
    await putLocal('prefs', { lang: lang() });
    if (open) { setFormLanguage(formLang(open.formDoc)); renderFormChrome(); } else render();
  });
}

function renderSignIn(error = '') {
  root.innerHTML = `${header()}<main class="signin">
    <h2>${esc(t('sign_in'))}</h2><p class="help">${esc(t('sign_in_help'))}</p>
    ${session && session.revoked ? `<p class="error" id="revoked">${esc(t('err_revoked'))}</p>` : ''}
    <form id="signin"><label>${esc(t('username'))}<input name="username" autocomplete="username" required></label>
    <label>${esc(t('password'))}<input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" class="primary">${esc(t('sign_in'))}</button>
    <p class="error" id="signin-error">${esc(error)}</p></form></main>`;
  bindHeader();
  $('#signin').on('submit', async (e) => {
    e.preventDefault();
    const f = e.target;
    $('#signin button').prop('disabled', true);
    const err = await signIn(f.username.value.trim(), f.password.value);
    f.password.value = '';
    if (err) { $('#signin button').prop('disabled', false); $('#signin-error').text(err); } else render();
  });
}

async function statusBox() {
  const state = await syncState();
  const waiting = (await pending()).length;
  const s = await getLocal('session');
  const offsetDays = s && s.clock_offset_ms ? Math.round(Math.abs(s.clock_offset_ms) / 86400000) : 0;
  const lastErr = state.last_error && (!state.last_success || state.last_error_at > state.last_success);
  const errText = !lastErr ? '' : state.last_error === 'revoked' ? t('err_revoked')
    : state.last_error === 'network' ? t('err_network') : t('err_server', { e: state.last_error.replace(/^server:/, '') });
  const persist = await getLocal('storage');
  return `<section class="status" id="status">
    <p class="who">${esc(t('signed_in_as', { u: session.name, a: session.area }))}</p>
    ${navigator.onLine ? '' : `<p class="offline" id="offline">${esc(t('offline'))}</p>`}
    <p id="waiting" data-count="${waiting}">${esc(t('n_waiting', { n: waiting }))}</p>
    <p id="last-sync" data-at="${esc(state.last_success || '')}" data-error-at="${esc(state.last_error_at || '')}" data-written="${state.last_result ? state.last_result.written : ''}">${esc(t('last_sync', { t: fmtTime(state.last_success) }))}</p>
    ${lastErr ? `<p class="error" id="last-error">${esc(t('last_error', { e: errText }))}</p>` : ''}
    ${offsetDays >= 1 ? `<p class="error" id="clock">${esc(t('clock_wrong', { d: offsetDays }))}</p>` : ''}
    ${persist && persist.persisted === false ? `<p class="warn" id="storage">${esc(t('storage_no'))}</p>` : ''}
    ${notice ? `<p class="notice" id="notice">${esc(t(...notice))}</p>` : ''}
    <button id="send-now" class="primary">${esc(t('send_now'))}</button></section>`;
}

async function renderHome() {
  const forms = await currentForms();
  const drafts = (await draftsDb.allDocs({ include_docs: true })).rows.map((r) => r.doc);
  const finished = (await outboxDb.allDocs({ include_docs: true })).rows.map((r) => r.doc);
  const state = await syncState();
  const titles = Object.fromEntries((await formsDb.allDocs({ include_docs: true })).rows.map((r) => [r.doc.form_id, r.doc.title]));
  const formList = forms.length ? forms.map((f) => `<li><button class="new" data-form="${esc(f._id)}">${esc(t('new_record'))}: ${esc(f.title)}</button></li>`).join('')
    : `<li>${esc(t('no_forms'))}</li>`;
  const draftList = drafts.length ? drafts.sort((a, b) => (a.saved_at < b.saved_at ? 1 : -1)).map((d) => `<li class="draft"><button class="open" data-draft="${esc(d._id)}">${esc(d.title || d.form_id)} — ${esc(t('draft_of', { t: fmtTime(d.saved_at) }))}</button></li>`).join('')
    : `<li>${esc(t('none'))}</li>`;
  const superseded = new Set(finished.map((d) => d.deprecated_id).filter(Boolean));
  const finishedList = finished.length ? finished.sort((a, b) => (a.received_at < b.received_at ? 1 : -1)).map((d) => {
    const st = state.sent[d._id] ? 'sent' : state.refused[d._id] ? 'refused' : 'waiting';
    const old = superseded.has(d._id);
    const edit = old || st === 'refused' ? '' : ` <button class="edit link" data-id="${esc(d._id)}">${esc(t('edit'))}</button>`;
    return `<li class="finished ${st}${old ? ' superseded' : ''}" data-id="${esc(d._id)}" data-deprecated="${esc(d.deprecated_id || '')}">${esc(titles[d.form_id] || d.form_id)} — ${esc(fmtTime(d.received_at))} · <span class="state">${esc(t(st))}</span>${old ? ` · ${esc(t('edited'))}` : ''}${st === 'refused' ? ` <small class="why">${esc(refusalText(state.refused[d._id]))}</small>` : ''}${edit}</li>`;
  }).join('') : `<li>${esc(t('none'))}</li>`;
  const status = await statusBox();
  if (open) return; // a form was opened while this screen was being prepared: never draw over it
  root.innerHTML = `${header()}<main class="home">${status}
    <section><h2>${esc(t('forms'))}</h2><ul class="forms">${formList}</ul></section>
    <section><h2>${esc(t('drafts'))}</h2><ul id="drafts">${draftList}</ul></section>
    <section><h2>${esc(t('finished'))}</h2><ul id="finished">${finishedList}</ul></section>
    <p class="foot"><button id="sign-out" class="link">${esc(t('sign_out'))}</button></p></main>`;
  bindHeader();
  $('button.new').on('click', (e) => openForm(e.currentTarget.dataset.form, null));
  $('button.open').on('click', (e) => openDraft(e.currentTarget.dataset.draft));
  $('button.edit').on('click', (e) => openEdit(e.currentTarget.dataset.id));
  $('#send-now').on('click', () => sync(true));
  $('#sign-out').on('click', signOut);
}

function formLang(formDoc) {
  const codes = Object.values((formDoc.enketo && formDoc.enketo.languageMap) || {});
  return codes.includes(lang()) ? lang() : codes[0] || lang();
}

async function openDraft(draftId) {
  const draft = await draftsDb.get(draftId, { attachments: true, binary: true });
  const formId = `form:${draft.form_id}:${draft.form_version}`;
  let formDoc;
  try { formDoc = await formsDb.get(formId); } catch (e) {
    notice = ['form_gone'];
    return render();
  }
  const files = {};
  for (const [name, att] of Object.entries(draft._attachments || {})) files[name] = att.data;
  return openForm(formId, draft, files, formDoc.current ? null : ['form_old']);
}

// An edit of a finished record: Enketo loads it as submitted, gives it a new instanceID and records the old one
// as deprecatedID (the OpenRosa rule); the photos it still names are carried into the new record.
async function openEdit(id) {
  const doc = await outboxDb.get(id, { attachments: true, binary: true });
  const formId = `form:${doc.form_id}:${doc.form_version}`;
  try { await formsDb.get(formId); } catch (e) {
    notice = ['form_gone'];
    return render();
  }
  const files = {};
  for (const [name, att] of Object.entries(doc._attachments || {})) files[name] = att.data;
  return openForm(formId, { instance: doc.xml, submitted: true }, files);
}

// formNotice: [text key] shown above the form (passed here, not through the shared `notice`, which a sync
// finishing meanwhile may change).
async function openForm(formId, draft, files = {}, formNotice = null) {
  const formDoc = await formsDb.get(formId);
  fileManager.setStoredFiles(files);
  root.innerHTML = `${header()}<main class="fill"><div class="or-container"><div id="form-host"></div></div>
    <div class="actions"><button id="back">${esc(t('back'))}</button>
    <button id="save-draft">${esc(t('save_draft'))}</button>
    <button id="finish" class="primary">${esc(t('finish'))}</button></div><p id="form-msg" class="notice">${esc(formNotice ? t(...formNotice) : '')}</p></main>`;
  notice = null;
  const host = document.getElementById('form-host');
  host.innerHTML = formDoc.enketo.form;
  const formEl = host.querySelector('form.or');
  const data = { modelStr: formDoc.enketo.model };
  if (draft) { data.instanceStr = draft.instance; data.submitted = Boolean(draft.submitted); }
  const form = new Form(formEl, data, { language: formLang(formDoc) });
  const errors = form.init();
  if (errors && errors.length) console.warn('form load errors', errors);
  open = { form, formDoc, draftId: draft && draft._id ? draft._id : null, files: { ...files } };
  bindHeader();
  renderFormChrome();
  $('#back').on('click', () => { open = null; render(); });
  $('#save-draft').on('click', saveDraft);
  $('#finish').on('click', finish);
}

// Enketo switches languages on a change of its own (hidden) selector; the app has one selector for both.
function setFormLanguage(code) {
  const select = document.querySelector('#form-languages');
  if (!select || select.value === code || ![...select.options].some((o) => o.value === code)) return;
  select.value = code;
  select.dispatchEvent(new Event('change', { bubbles: true }));
}

function renderFormChrome() {
  $('#back').text(t('back'));
  $('#save-draft').text(t('save_draft'));
  $('#finish').text(t('finish'));
}

// Files the instance names: new picks (Enketo's file inputs) plus those kept from the draft.
function currentFiles(xml) {
  const files = { ...open.files };
  for (const f of fileManager.getCurrentFiles()) files[f.name] = f;
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const named = new Set(Array.from(doc.getElementsByTagName('*')).filter((el) => el.children.length === 0).map((el) => el.textContent.trim()));
  return Object.fromEntries(Object.entries(files).filter(([name]) => named.has(name)));
}

function attachments(files) {
  return Object.fromEntries(Object.entries(files).map(([name, blob]) => [name, { content_type: blob.type || 'application/octet-stream', data: blob }]));
}

async function saveDraft() {
  const { form, formDoc } = open;
  form.view.html.dispatchEvent(events.BeforeSave());
  const xml = form.getDataStr();
  const files = currentFiles(xml);
  const id = open.draftId || `draft:${uuid()}`;
  let rev;
  try { rev = (await draftsDb.get(id))._rev; } catch (e) { rev = undefined; }
  try {
    await draftsDb.put({ _id: id, _rev: rev, form_id: formDoc.form_id, form_version: formDoc.version, title: formDoc.title,
      instance: xml, saved_at: new Date().toISOString(), _attachments: attachments(files) });
  } catch (e) {
    $('#form-msg').text(isQuotaError(e) ? t('err_storage') : String(e.message || e));
    return;
  }
  open = null;
  notice = ['saved_draft'];
  render();
}

async function finish() {
  const { form, formDoc } = open;
  const valid = await form.validate();
  if (!valid) { $('#form-msg').text(t('invalid')); return; }
  form.view.html.dispatchEvent(events.BeforeSave());
  const xml = form.getDataStr();
  const files = currentFiles(xml);
  const instanceId = form.instanceID;
  const deprecatedId = form.deprecatedID || null;
  const model = new DOMParser().parseFromString(xml, 'text/xml');
  const answer = (name) => { const el = model.getElementsByTagName(name)[0]; return el ? el.textContent.trim() : ''; };
  const district = answer('district');
  const commune = answer('commune');
  const device = (await getLocal('device')) || (await putLocal('device', { id: uuid() }), await getLocal('device'));
  const doc = {
    _id: instanceId,
    type: 'submission',
    form_id: formDoc.form_id,
    form_version: formDoc.version,
    xml,
    xml_sha256: await sha256Hex(xml),
    deprecated_id: deprecatedId && deprecatedId !== instanceId ? deprecatedId : null,
    submitted_by: session.name,
    device_id: `webapp:${device.id}`,
    received_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), // the phone's time; the server decides
    received_by: null,
    area: session.area,
    org_unit: commune && district ? ['91', district, commune] : null,
    attachments_expected: Object.keys(files).sort(),
    _attachments: attachments(files),
  };
  try {
    await outboxDb.put(doc);
  } catch (e) {
    $('#form-msg').text(isQuotaError(e) ? t('err_storage') : String(e.message || e));
    return;
  }
  if (open.draftId) {
    try { await draftsDb.remove(await draftsDb.get(open.draftId)); } catch (e) { /* already gone */ }
  }
  open = null;
  notice = ['finished_ok'];
  render();
  if (navigator.onLine) sync(false);
}

async function sync(userAsked) {
  if (!session) return;
  if (userAsked) { notice = ['syncing']; if (!open) await render(); }
  const r = await pushOnce(session.token);
  if (r.status === 401) { session.revoked = true; await putLocal('session', { ...session }); }
  notice = r.error ? null : ['sync_done', { n: r.written }];
  if (!open) await render();
}

async function requestPersistence() {
  if (!navigator.storage || !navigator.storage.persist) return;
  const persisted = (await navigator.storage.persisted()) || (await navigator.storage.persist());
  await putLocal('storage', { persisted });
}

async function render() {
  if (!session || session.revoked) return renderSignIn(); // records stay on the phone either way
  return renderHome();
}

async function start() {
  const prefs = await getLocal('prefs');
  setLang((prefs && prefs.lang) || 'vi');
  const s = await getLocal('session');
  session = s ? { token: s.token, token_id: s.token_id, name: s.name, role: s.role, area: s.area, revoked: s.revoked } : null;
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register(`${location.origin}/app/sw.js`, { scope: '/app/' }).catch((e) => console.warn('service worker', e));
  }
  await render();
  requestPersistence().then(() => { if (!open && session) render(); });
  if (session && navigator.onLine) {
    await refreshForms();
    if (!open) await render();
    sync(false);
  }
  window.addEventListener('online', () => { refreshForms().then(() => sync(false)); });
  window.addEventListener('offline', () => { if (!open) render(); });
  document.body.dataset.ready = 'true';
}

// The phone's stores, for support staff in DevTools (and the browser test): nothing here is secret beyond what
// the phone already holds.
window.carecheck = { formsDb, draftsDb, outboxDb };
start();
