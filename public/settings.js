// camwall settings page: cameras (state, codec, size, fps, bitrate, errors; add, test, edit,
// disable, remove), views (pick cameras, order by drag, columns) and users (users.js), all
// through the runtime API as an admin (a login, or the admin token: `?token=`). Validation messages come from the server and are shown
// next to the field they name. A viewer token sees the lists and is told it cannot change them.
// Where users are configured, a person logs in first (session.js).

import { ensureSession } from "./session.js";
import { initUsers } from "./users.js";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const $ = (sel, root = document) => root.querySelector(sel);
const state = { admin: false, ready: false, cameras: [], views: [], editing: null, editingView: null, bytes: new Map() };
window.settings = state;

if (token) $("#wall-link").href = `/?token=${encodeURIComponent(token)}`;

async function api(method, path, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try { json = await r.json(); } catch (_) { /* an empty answer */ }
  return { status: r.status, ok: r.ok, body: json };
}

function clearErrors(form) {
  for (const e of form.querySelectorAll(".err")) e.textContent = "";
}

// An error answer next to the field it names (`cameras[2]` goes to `cameras`), else the form's.
function showError(form, res) {
  const b = res.body || {};
  const field = (b.field || "(body)").replace(/\[\d+\]$/, "");
  const slot = form.querySelector(`.err[data-for="${CSS.escape(field)}"]`) || form.querySelector('.err[data-for="(body)"]');
  slot.textContent = b.message || `error ${res.status}`;
}

// Whether this token may change things: a probe with an empty body is refused for a viewer
// (403) before anything is opened, and for an admin it is a bad body (400), nothing more.
async function checkAccess() {
  const r = await api("POST", "/api/ip-cameras/probe", {});
  const access = $("#access");
  state.admin = r.status === 400;
  document.body.classList.toggle("viewer", !state.admin);
  if (r.status === 403) {
    access.textContent = "This token may watch but not change settings (403 forbidden): open this page with an admin token (?token=...).";
    access.className = "denied";
  } else if (r.status === 401) {
    access.textContent = "A token is required (401 unauthorized): open this page with ?token=<admin token>.";
    access.className = "denied";
  } else {
    access.textContent = "";
    access.className = "";
  }
}

function fmtRate(bitsPerS) {
  if (bitsPerS == null) return "—";
  return bitsPerS >= 1e6 ? `${(bitsPerS / 1e6).toFixed(1)} Mbit/s` : `${Math.round(bitsPerS / 1e3)} kbit/s`;
}

async function loadCameras() {
  const r = await api("GET", "/api/ip-cameras/status");
  if (!r.ok) return;
  const now = performance.now();
  state.cameras = r.body.cameras;
  const tbody = $("#cameras tbody");
  tbody.textContent = "";
  for (const c of state.cameras) {
    // Bitrate of the camera's own video, from its byte count between two refreshes.
    const prev = state.bytes.get(c.id);
    const bytes = c.video && c.video.bytes_in;
    let rate = null;
    if (prev && bytes != null && now > prev.t && bytes >= prev.b) rate = ((bytes - prev.b) * 8 * 1000) / (now - prev.t);
    if (bytes != null) state.bytes.set(c.id, { b: bytes, t: now });
    const tr = document.createElement("tr");
    tr.dataset.camera = c.id;
    const cells = [`${c.name} (${c.id})`, c.state, c.codec || "—", c.width ? `${c.width}×${c.height}` : "—",
      c.fps ? c.fps.toFixed(1) : "0", bytes ? fmtRate(rate) : "—", c.last_error || ""];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 6) td.className = "error";
      tr.appendChild(td);
    });
    const actions = document.createElement("td");
    actions.className = "admin";
    const button = (label, fn) => {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = label; b.className = label.toLowerCase();
      b.addEventListener("click", fn);
      actions.appendChild(b);
    };
    button("Edit", () => editCamera(c.id));
    button(c.enabled ? "Disable" : "Enable", async () => {
      const res = await api("PATCH", `/api/ip-cameras/${encodeURIComponent(c.id)}`, { enabled: !c.enabled });
      if (!res.ok) alert(res.body ? res.body.message : res.status);
      loadCameras();
    });
    button("Remove", async () => {
      if (!confirm(`Remove camera ${c.name}?`)) return;
      const res = await api("DELETE", `/api/ip-cameras/${encodeURIComponent(c.id)}`);
      if (!res.ok) alert(res.body ? res.body.message : res.status);
      loadCameras(); loadViews();
    });
    tr.appendChild(actions);
    tbody.appendChild(tr);
  }
  // The picker is rebuilt only when the cameras change, never under a drag.
  const ids = state.cameras.map((c) => c.id).join(",");
  if (ids !== state.camIds) { state.camIds = ids; renderViewCams(); }
}

// ---- the camera form ----
const camForm = $("#cam-form");

// The camera object the form describes. Passwords are never shown: a URL or option sent back
// exactly as shown (with ***) means "keep the stored secret" to the server, a new one
// replaces it. Editing sends only what changed; a test sends the camera's options as shown.
function cameraBody() {
  const f = camForm.elements;
  const body = { id: f.id.value.trim(), url: f.url.value.trim(), enabled: f.enabled.checked };
  if (f.name.value.trim()) body.name = f.name.value.trim();
  if (f.max_fps.value.trim()) body.max_fps = Number(f.max_fps.value.trim());
  if (f.sub.value.trim()) body.sub = { url: f.sub.value.trim() };
  return body;
}

// For a test of the camera being edited: its options (and its sub stream's, while the sub URL
// is the one shown) as the server showed them, which it takes as the stored ones.
function probeBody() {
  const body = cameraBody();
  const was = state.editing;
  if (!was) return body;
  if (was.options && Object.keys(was.options).length) body.options = was.options;
  if (body.sub && was.sub && body.sub.url === was.sub.url && was.sub.options) {
    body.sub.options = was.sub.options;
  }
  return body;
}

async function probe() {
  clearErrors(camForm);
  const out = $("#probe-result");
  out.textContent = "testing…";
  const r = await api("POST", "/api/ip-cameras/probe", probeBody());
  out.textContent = "";
  if (!r.ok) {
    showError(camForm, r);
    out.textContent = "test failed";
    return null;
  }
  const p = r.body;
  const line = (what) => `${what.codec} ${what.width}×${what.height}${what.fps ? ` ${what.fps} fps` : ""}${what.audio ? ", audio" : ", no audio"}`;
  const text = document.createElement("p");
  text.className = "found";
  text.textContent = `found: ${line(p)}`;
  out.appendChild(text);
  const img = document.createElement("img");
  img.src = p.snapshot; img.alt = "snapshot from the test";
  out.appendChild(img);
  if (p.sub) {
    const s = document.createElement("p");
    s.textContent = p.sub.error ? "" : `sub stream: ${line(p.sub)}`;
    out.appendChild(s);
    if (p.sub.error) $('.err[data-for="sub.url"]').textContent = p.sub.message;
  }
  return p;
}
$("#probe").addEventListener("click", probe);

camForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearErrors(camForm);
  const body = cameraBody();
  let r;
  if (state.editing) {
    const before = state.editing;
    const patch = {};
    for (const k of ["name", "url", "enabled", "max_fps"]) {
      const now = body[k] === undefined ? null : body[k];
      const was = before[k] === undefined ? null : before[k];
      if (now !== was) patch[k] = now;
    }
    // The sub stream by its (redacted) URL: unchanged unless typed again or cleared.
    const subNow = body.sub ? body.sub.url : null;
    const subWas = before.sub ? before.sub.url : null;
    if (subNow !== subWas) patch.sub = body.sub || null;
    r = await api("PATCH", `/api/ip-cameras/${encodeURIComponent(before.id)}`, patch);
  } else {
    r = await api("POST", "/api/ip-cameras", body);
  }
  if (!r.ok) return showError(camForm, r);
  $("#probe-result").textContent = `saved ${body.id}`;
  resetCamForm();
  loadCameras();
});

async function editCamera(id) {
  const r = await api("GET", `/api/ip-cameras/${encodeURIComponent(id)}`);
  if (!r.ok) return;
  state.editing = r.body;
  const f = camForm.elements;
  f.id.value = r.body.id; f.id.disabled = true;
  f.name.value = r.body.name || "";
  f.url.value = r.body.url;
  f.max_fps.value = r.body.max_fps || "";
  f.sub.value = r.body.sub ? r.body.sub.url : "";
  f.enabled.checked = r.body.enabled;
  $("#cam-form-title").textContent = `Edit ${r.body.id}`;
  $("#cancel-edit").hidden = false;
  f.name.focus();
}

function resetCamForm() {
  state.editing = null;
  camForm.reset();
  camForm.elements.id.disabled = false;
  $("#cam-form-title").textContent = "Add a camera";
  $("#cancel-edit").hidden = true;
}
$("#cancel-edit").addEventListener("click", () => { resetCamForm(); clearErrors(camForm); });

// ---- views ----
const viewForm = $("#view-form");

async function loadViews() {
  const r = await api("GET", "/api/views");
  if (!r.ok) return;
  state.views = r.body.views;
  const ul = $("#views");
  ul.textContent = "";
  for (const v of state.views) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `/?view=${encodeURIComponent(v.id)}${token ? `&token=${encodeURIComponent(token)}` : ""}`;
    a.textContent = v.name || v.id;
    li.appendChild(a);
    li.append(` — ${v.cameras.join(", ")} · ${v.layout || "grid"}${v.columns ? `, ${v.columns} columns` : ""} `);
    for (const [label, fn] of [["Edit", () => editView(v)], ["Delete", () => deleteView(v)]]) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = label; b.className = `admin ${label.toLowerCase()}`;
      b.addEventListener("click", fn);
      li.appendChild(b);
    }
    ul.appendChild(li);
  }
}

// The camera picker: every camera, the view's own first in its order; drag to reorder.
function renderViewCams(order) {
  const ol = $("#view-cams");
  const picked = order || [...ol.querySelectorAll("input:checked")].map((i) => i.value);
  const ids = [...picked, ...state.cameras.map((c) => c.id).filter((id) => !picked.includes(id))];
  ol.textContent = "";
  for (const id of ids) {
    if (!state.cameras.some((c) => c.id === id)) continue;
    const li = document.createElement("li");
    li.draggable = true;
    li.dataset.camera = id;
    li.innerHTML = `<label><span><input type="checkbox" value=""> <span class="n"></span></span></label>`;
    li.querySelector("input").value = id;
    li.querySelector("input").checked = picked.includes(id);
    li.querySelector(".n").textContent = id;
    li.addEventListener("dragstart", () => li.classList.add("dragging"));
    li.addEventListener("dragend", () => li.classList.remove("dragging"));
    ol.appendChild(li);
  }
}
$("#view-cams").addEventListener("dragover", (e) => {
  e.preventDefault();
  const ol = $("#view-cams");
  const dragging = ol.querySelector(".dragging");
  if (!dragging) return;
  const after = [...ol.querySelectorAll("li:not(.dragging)")].find((li) => {
    const r = li.getBoundingClientRect();
    return e.clientY < r.top + r.height / 2;
  });
  ol.insertBefore(dragging, after || null);
});

function editView(v) {
  state.editingView = v;
  const f = viewForm.elements;
  f.id.value = v.id; f.id.disabled = true;
  f.name.value = v.name || "";
  f.columns.value = v.columns ? String(v.columns) : "";
  f.layout.value = v.layout || "grid";
  renderViewCams(v.cameras);
  $("#view-form-title").textContent = `Edit view ${v.id}`;
  $("#cancel-view").hidden = false;
}

function resetViewForm() {
  state.editingView = null;
  viewForm.reset();
  viewForm.elements.id.disabled = false;
  renderViewCams([]);
  $("#view-form-title").textContent = "Add a view";
  $("#cancel-view").hidden = true;
}
$("#cancel-view").addEventListener("click", () => { resetViewForm(); clearErrors(viewForm); });

async function deleteView(v) {
  if (!confirm(`Delete view ${v.name || v.id}?`)) return;
  await api("DELETE", `/api/views/${encodeURIComponent(v.id)}`);
  loadViews();
}

viewForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearErrors(viewForm);
  const f = viewForm.elements;
  const body = {
    id: f.id.value.trim(),
    cameras: [...$("#view-cams").querySelectorAll("input:checked")].map((i) => i.value),
    layout: f.layout.value,
  };
  if (f.name.value.trim()) body.name = f.name.value.trim();
  if (f.columns.value) body.columns = Number(f.columns.value);
  const r = state.editingView
    ? await api("PUT", `/api/views/${encodeURIComponent(state.editingView.id)}`, body)
    : await api("POST", "/api/views", body);
  if (!r.ok) return showError(viewForm, r);
  resetViewForm();
  loadViews();
});

await ensureSession(token);
await checkAccess();
await loadCameras();
await loadViews();
if (state.admin) await initUsers({ api, state, $, clearErrors, showError });
state.ready = true;
setInterval(loadCameras, 3000);
