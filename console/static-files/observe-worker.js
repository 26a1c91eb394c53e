// The web form's service worker: the observe pages, their scripts and the mission's
// XForms are answered from the network when there is one (and kept), from what was kept
// when there is none. Nothing else passes through it.
const CACHE = "eom-observe-1";
const OBSERVE = /^\/missions\/[^/]+\/observe(\/forms\/[^/]+\/[^/]+\.xml)?$/;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function kept(url) {
  return url.origin === self.location.origin && (url.pathname.startsWith("/static/") || OBSERVE.test(url.pathname));
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !kept(url)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(event.request, copy)));
        }
        return response;
      })
      .catch(() => caches.match(event.request, { ignoreVary: true }).then((found) => found ?? Response.error())),
  );
});
