// The observer's web form: ODK Web Forms renders the XForm; finished forms wait in an
// IndexedDB outbox under their instanceID and are sent to the mission's OpenRosa
// submission URL when there is a connection (a resend is recorded once).
import { createApp, h } from "vue";
import { OdkWebForm, webFormsPlugin, POST_SUBMIT__NEW_INSTANCE } from "@getodk/web-forms";

const XF = "http://www.w3.org/2002/xforms";
const page = document.getElementById("observe");
const said = page.dataset;
const mission = said.mission;
const team = said.team;
const status = document.getElementById("observe-status");

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

const db = await new Promise((resolve, reject) => {
  const opening = indexedDB.open("eom-outbox", 1);
  opening.onupgradeneeded = () => {
    opening.result.createObjectStore("reports", { keyPath: "id" });
    opening.result.createObjectStore("credentials", { keyPath: "mission" });
  };
  opening.onsuccess = () => resolve(opening.result);
  opening.onerror = () => reject(opening.error);
});

function store(name, mode = "readonly") {
  return db.transaction(name, mode).objectStore(name);
}

async function reports() {
  const all = await request(store("reports").getAll());
  return all.filter((r) => r.mission === mission).sort((a, b) => a.queued_at - b.queued_at);
}

async function credential() {
  const kept = await request(store("credentials").get(mission));
  const soon = Date.now() + 3600 * 1000;
  if (kept && Date.parse(kept.expires_at) > soon) return kept;
  if (!navigator.onLine) return kept;
  const response = await fetch(said.credentialUrl, {
    method: "POST",
    headers: { "X-CSRF-Token": said.csrf },
    credentials: "same-origin",
  });
  if (!response.ok) return kept;
  const fresh = { mission, ...(await response.json()) };
  await request(store("credentials", "readwrite").put(fresh));
  return fresh;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

async function show() {
  const body = document.querySelector("#outbox tbody");
  const rows = [];
  for (const r of await reports()) {
    const tr = document.createElement("tr");
    tr.dataset.state = r.state;
    tr.dataset.id = r.id;
    cell(tr, r.id);
    cell(tr, r.form);
    cell(tr, r.station);
    cell(tr, said[`said${r.state[0].toUpperCase()}${r.state.slice(1)}`] ?? r.state);
    cell(tr, r.message ?? "");
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function message(text) {
  try {
    const doc = new DOMParser().parseFromString(text, "text/xml");
    return doc.getElementsByTagName("message")[0]?.textContent ?? text;
  } catch {
    return text;
  }
}

let sending = false;

async function flush() {
  if (sending || !navigator.onLine) return;
  sending = true;
  try {
    const waiting = (await reports()).filter((r) => r.state === "waiting");
    if (!waiting.length) return;
    const cred = await credential();
    if (!cred) return;
    for (const report of waiting) {
      const body = new FormData();
      body.append("xml_submission_file", new Blob([report.xml], { type: "text/xml" }), "submission.xml");
      for (const file of report.files ?? []) body.append(file.name, file.blob, file.name);
      let response;
      try {
        response = await fetch(cred.submission_url, { method: "POST", body });
      } catch {
        break; // no connection after all: the rest waits
      }
      const text = await response.text();
      if (response.status === 201 || response.status === 202) {
        report.state = "acknowledged";
      } else if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
        report.state = "refused";
      } else {
        continue; // the server is busy or down: sent again later
      }
      report.message = message(text);
      await request(store("reports", "readwrite").put(report));
      await show();
    }
  } finally {
    sending = false;
  }
}

function withTeamAndStation(xml, station) {
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const primary = doc.getElementsByTagNameNS(XF, "instance")[0]?.firstElementChild;
  for (const [name, value] of [["station_id", station], ["team_id", team]]) {
    for (const node of primary?.children ?? []) {
      if (node.localName === name) node.textContent = value;
    }
  }
  return new XMLSerializer().serializeToString(doc);
}

let mounted = null;

async function open(formUrl, station) {
  const response = await fetch(formUrl, { credentials: "same-origin" });
  const formXml = withTeamAndStation(await response.text(), station);
  const formName = formUrl.split("/forms/")[1].replace(/\.xml$/, "");
  const onSubmit = async (payload, callback) => {
    const data = payload.data[0];
    const xml = await data.get("xml_submission_file").text();
    const doc = new DOMParser().parseFromString(xml, "text/xml");
    const id = doc.getElementsByTagName("instanceID")[0]?.textContent;
    const files = [];
    for (const [name, value] of data.entries()) {
      if (name !== "xml_submission_file" && value instanceof Blob) files.push({ name, blob: value });
    }
    await request(
      store("reports", "readwrite").put({
        id, mission, form: formName, station, xml, files, state: "waiting", message: "", queued_at: Date.now(),
      }),
    );
    await show();
    callback({ next: POST_SUBMIT__NEW_INSTANCE });
    document.body.dataset.queued = String(Number(document.body.dataset.queued ?? 0) + 1);
    flush();
  };
  mounted?.unmount();
  mounted = createApp({
    render: () => h(OdkWebForm, { formXml, fetchFormAttachment: () => new Response("", { status: 404 }), missingResourceBehavior: "BLANK", onSubmit }),
  });
  mounted.use(webFormsPlugin).mount("#engine");
}

function online() {
  status.textContent = navigator.onLine ? said.saidOnline : said.saidOffline;
  document.body.dataset.online = String(navigator.onLine);
}

document.getElementById("observe-choice")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const choice = new FormData(event.target);
  open(choice.get("form"), choice.get("station"));
});
window.addEventListener("online", () => { online(); flush(); });
window.addEventListener("offline", online);
setInterval(flush, 15000);

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/observe-worker.js").catch(() => {});
}
// Keep this page, its scripts and styles, and every form of the mission for offline use:
// the service worker answers from this cache when there is no connection.
async function keepForOffline() {
  if (!("caches" in window) || !navigator.onLine) return;
  const cache = await caches.open("eom-observe-1");
  const urls = new Set([location.pathname, ...said.keep.split(" ")]);
  for (const option of document.querySelectorAll("#observe-choice select[name=form] option")) {
    urls.add(option.value);
  }
  await Promise.all(
    [...urls].map((url) =>
      fetch(url, { credentials: "same-origin" })
        .then((response) => (response.ok ? cache.put(url, response) : null))
        .catch(() => null),
    ),
  );
}
online();
await keepForOffline();
await show();
await credential().catch(() => null);
document.body.dataset.ready = "true";
flush();
