// Service worker of the field app: keeps the app shell so the app opens with no network after one online
// visit. Forms and records live in PouchDB (IndexedDB), not here. Cache name changes with every build.
const CACHE = 'carecheck-app-__BUILD__';
const SHELL = ['/app/', '/app/app.js', '/app/app.css', '/app/manifest.webmanifest', '/app/icon-192.png', '/app/icon-512.png'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('carecheck-app-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin) return;
  if (!url.pathname.startsWith('/app/') || url.pathname.startsWith('/app/api/')) return; // API and /sync: network
  const key = url.pathname === '/app/index.html' ? '/app/' : url.pathname;
  // Network first with a short wait (a fresh shell when online), the cached shell when offline or slow.
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const ctrl = new AbortController();
      const timer = setTimeout(() => ctrl.abort(), 4000);
      const fresh = await fetch(event.request, { signal: ctrl.signal });
      clearTimeout(timer);
      if (fresh.ok && SHELL.includes(key)) cache.put(key, fresh.clone());
      return fresh;
    } catch (e) {
      const hit = await cache.match(key);
      if (hit) return hit;
      throw e;
    }
  })());
});
