// Enketo's file manager with files kept by the app: a photo taken for a draft is stored in PouchDB and shown
// again when the draft is reopened (enketo-core asks getFileUrl(filename) for the files an instance names).
import base from 'enketo-core/src/js/file-manager';

const stored = new Map(); // filename -> Blob, for the record that is open

const fileManager = Object.assign({}, base);

fileManager.setStoredFiles = (files) => {
  stored.clear();
  for (const [name, blob] of Object.entries(files || {})) stored.set(name, blob);
};

fileManager.storedFile = (name) => stored.get(name) || null;

fileManager.getFileUrl = (subject) => {
  if (typeof subject === 'string' && stored.has(subject)) {
    return Promise.resolve(URL.createObjectURL(stored.get(subject)));
  }
  return base.getFileUrl(subject);
};

fileManager.getObjectUrl = (subject) => fileManager.getFileUrl(subject);

export default fileManager;
