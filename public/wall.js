// camwall live wall: one WebSocket for every camera (protocol: docs/PROTOCOL.md). Each tile
// subscribes while visible, draws the newest frame on a canvas, and acknowledges it so the
// server can fit quality, size and frame rate to this browser's link and screen. Cameras whose
// codec this browser decodes (WebCodecs, secure contexts only) come as their own H.264/H.265;
// the rest, and every tile after a decoder error, as JPEG. `?codec=jpeg` forces JPEG.

import { supportedFamilies, supportsConfig, VideoTile } from "./video.js";

const wall = document.getElementById("wall");
const connBadge = document.getElementById("conn");
const summary = document.getElementById("summary");
const params = new URLSearchParams(location.search);
const token = params.get("token");
// Video families this browser decodes, probed once before connecting.
let families = [];

const tiles = new Map(); // camera id -> tile state
let ws = null;
let retryMs = 500;
let focused = null;
// Downscale factors the server offers (from `hello`); full size only until it says.
let scales = [1];

// Frame `ts` values are on the server's clock, which may be seconds away from this one:
// latency is shown against the server's time, estimated from `ping`/`pong` round trips
// (NTP-style: the server read its clock about halfway through the round trip). The sample
// with the shortest round trip among the last few is the most trustworthy.
let clockOffset = 0; // server time - local time, ms
const clockSamples = []; // {rtt, offset}
const PING_EVERY_MS = 10000;

function serverNow() {
  return Date.now() + clockOffset;
}

function onPong(msg) {
  const t1 = Date.now();
  const t0 = msg.t0;
  if (typeof t0 !== "number" || typeof msg.server_time_ms !== "number" || t1 < t0) return;
  clockSamples.push({ rtt: t1 - t0, offset: msg.server_time_ms - (t0 + t1) / 2 });
  if (clockSamples.length > 8) clockSamples.shift();
  clockOffset = clockSamples.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
}

function sendPing() {
  send({ type: "ping", t0: Date.now() });
}
setInterval(sendPing, PING_EVERY_MS);

function wsUrl() {
  const u = new URL("/ws", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) u.searchParams.set("token", token);
  return u.href;
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function makeTile(cam) {
  const el = document.createElement("div");
  el.className = "tile";
  el.innerHTML = `<canvas></canvas><div class="msg"></div>
    <div class="bar"><span class="name"></span><span class="badge"></span>
    <span class="stats"></span></div>`;
  el.querySelector(".name").textContent = cam.name;
  const t = {
    srcWidth: cam.width || 0,
    id: cam.id, el, canvas: el.querySelector("canvas"), msg: el.querySelector(".msg"),
    badge: el.querySelector(".badge"), stats: el.querySelector(".stats"),
    visible: false, subscribed: false, maxWidth: 0, pending: null, drawing: false,
    frames: [], latency: 0, tier: null, state: cam.state, error: null,
    video: null, label: "",
  };
  el.addEventListener("click", () => toggleFocus(t));
  wall.appendChild(el);
  observer.observe(el);
  tiles.set(cam.id, t);
  setState(t, cam.state, null);
  return t;
}

function setState(t, state, error) {
  t.state = state;
  t.error = error;
  const [cls, label] = state === "streaming" ? ["live", "live"]
    : state === "backoff" || state === "connecting" ? ["reconnecting", "reconnecting"]
    : state === "unauthorized" ? ["reconnecting", "wrong credentials"]
    : ["offline", state === "disabled" ? "disabled" : "offline"];
  t.badge.className = `badge ${cls}`;
  t.badge.textContent = label;
  t.badge.title = error || "";
  t.msg.textContent = state === "streaming" ? "" : (error ? `${label}: ${error}` : label);
}

// Largest picture worth sending to this tile, in device pixels: the smallest of the
// camera's sizes the server offers (`scales` in hello) that still covers the tile (the
// server caps at this).
function wantedWidth(t) {
  const need = (t.el.clientWidth || 320) * (window.devicePixelRatio || 1);
  if (!t.srcWidth) return Math.round(need);
  for (const s of [...scales].filter((x) => x > 1).sort((a, b) => b - a)) {
    const w = Math.ceil(t.srcWidth / s);
    if (w >= need) return w;
  }
  return t.srcWidth;
}

function updateSubscription(t) {
  const want = !document.hidden && t.visible && (!focused || focused === t);
  if (!want) {
    if (t.subscribed) send({ type: "unsubscribe", cameras: [t.id] });
    t.subscribed = false;
    return;
  }
  const maxWidth = wantedWidth(t);
  // Resubscribe only when the size changes enough to matter (tiers are whole fractions).
  if (t.subscribed && Math.abs(maxWidth - t.maxWidth) < t.maxWidth * 0.25) return;
  t.maxWidth = maxWidth;
  t.subscribed = true;
  send({ type: "subscribe", cameras: [t.id], quality: "auto", max_width: maxWidth, codecs: families });
}

function updateAll() {
  for (const t of tiles.values()) updateSubscription(t);
}

const observer = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const t = [...tiles.values()].find((x) => x.el === e.target);
    if (t) { t.visible = e.isIntersecting; updateSubscription(t); }
  }
}, { threshold: 0.01 });

// Removes a tile; if it was the focused one, the wall returns to the grid.
function removeTile(id) {
  const t = tiles.get(id);
  if (!t) return;
  if (t.video) t.video.close();
  if (focused === t) toggleFocus(t);
  observer.unobserve(t.el);
  t.el.remove();
  tiles.delete(id);
}

function toggleFocus(t) {
  focused = focused === t ? null : t;
  document.body.classList.toggle("focused", !!focused);
  for (const x of tiles.values()) x.el.classList.toggle("focus", x === focused);
  layout();
  // Sizes change with focus: let layout settle, then ask for the right tiers.
  requestAnimationFrame(() => { for (const x of tiles.values()) x.maxWidth = 0; updateAll(); });
}

document.addEventListener("keydown", (e) => { if (e.key === "Escape" && focused) toggleFocus(focused); });
document.addEventListener("visibilitychange", updateAll);

// Grid that fits the window: pick the column count that gives the largest 16:9 tiles.
function layout() {
  const n = Math.max(1, tiles.size);
  const W = wall.clientWidth - 8, H = wall.clientHeight - 8;
  let best = { cols: 1, h: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = W / cols;
    const h = Math.min(w * 9 / 16, H / rows);
    if (h > best.h) best = { cols, h };
  }
  // On narrow screens scroll instead of shrinking tiles to stamps.
  const rowH = Math.max(best.h, Math.min(180, W * 9 / 16));
  wall.style.setProperty("--cols", best.cols);
  wall.style.setProperty("--row-h", `${Math.floor(rowH)}px`);
}
window.addEventListener("resize", () => { layout(); clearTimeout(layout.t); layout.t = setTimeout(updateAll, 300); });

// Frames: [u8 version][u16 header length][JSON header][JPEG].
const decoder = new TextDecoder();
function onFrame(buf) {
  const view = new DataView(buf);
  if (view.getUint8(0) !== 1) return;
  const n = view.getUint16(1);
  const header = JSON.parse(decoder.decode(new Uint8Array(buf, 3, n)));
  const t = tiles.get(header.camera);
  if (!t) return;
  if (header.kind === "video") {
    if (t.video) t.video.decode(header, new Uint8Array(buf, 3 + n));
    return;
  }
  // Latest wins: a frame that arrives while the previous one decodes replaces any waiting one.
  t.pending = { header, blob: new Blob([new Uint8Array(buf, 3 + n)], { type: "image/jpeg" }) };
  if (!t.drawing) draw(t);
}

async function draw(t) {
  t.drawing = true;
  while (t.pending) {
    const { header, blob } = t.pending;
    t.pending = null;
    try {
      const bmp = await createImageBitmap(blob);
      if (t.canvas.width !== bmp.width || t.canvas.height !== bmp.height) {
        t.canvas.width = bmp.width;
        t.canvas.height = bmp.height;
      }
      t.canvas.getContext("2d").drawImage(bmp, 0, 0);
      bmp.close();
      markFirstPaint("jpeg");
      const now = Date.now();
      // Capture to display on the server's clock (0 if the estimate is a little off).
      const latency = Math.max(0, Math.round(serverNow() - header.ts));
      t.latency = t.latency ? t.latency * 0.8 + latency * 0.2 : latency;
      t.frames.push(now);
      send({ type: "ack", camera: header.camera, seq: header.seq, latency_ms: latency });
      t.size = `${header.width}×${header.height}`;
      const src = header.width * header.scale;
      if (Math.abs(src - t.srcWidth) > header.scale) {
        // First frame, or the camera changed size: ask again for the right tier.
        t.srcWidth = src;
        t.maxWidth = 0;
        updateSubscription(t);
      }
      t.quality = header.quality;
    } catch (_) {
      // A corrupt frame: skip it, the next one replaces it.
    }
  }
  t.drawing = false;
}

// When the page first painted a camera picture (ms since navigation began) and how it came:
// readable from the console, and timed by the benchmark.
function markFirstPaint(kind) {
  if (window.camwallFirstPaint) return;
  window.camwallFirstPaint = { ms: performance.now(), kind };
}

// What a tile gets, as its stats line says it: "H.264 full", "H.264 keyframes", "JPEG q80 1/2".
function tierLabel(msg) {
  const names = { h264: "H.264", h265: "H.265" };
  if (msg.codec && msg.codec !== "jpeg") return `${names[msg.codec] || msg.codec} ${msg.mode}`;
  return `JPEG q${msg.quality}${msg.scale > 1 ? ` 1/${msg.scale}` : ""}`;
}

// A camera served as video: (re)configure the tile's decoder, or tell the server this browser
// cannot decode it (it then sends JPEG).
async function configureVideo(t, cfg) {
  const fail = (message) => {
    if (t.video) { t.video.close(); t.video = null; }
    send({ type: "video_error", camera: t.id, message });
  };
  if (!(await supportsConfig(cfg))) return fail(`unsupported: ${cfg.codec}`);
  if (!t.video) {
    t.video = new VideoTile(t.canvas, fail);
    t.video.onDrawn = (seq, ts) => {
      markFirstPaint(t.video && t.video.config ? t.video.config.family : "video");
      const now = Date.now();
      const latency = Math.max(0, Math.round(serverNow() - ts));
      t.latency = t.latency ? t.latency * 0.8 + latency * 0.2 : latency;
      t.frames.push(now);
      t.size = `${t.canvas.width}×${t.canvas.height}`;
      send({ type: "ack", camera: t.id, seq, latency_ms: latency });
    };
  }
  t.video.configure(cfg);
}

function refreshStats() {
  const now = Date.now();
  let live = 0;
  for (const t of tiles.values()) {
    t.frames = t.frames.filter((x) => now - x < 2000);
    const fps = t.frames.length / 2;
    if (t.state === "streaming") live++;
    t.stats.textContent = t.subscribed && t.size
      ? `${fps.toFixed(0)} fps · ${Math.round(t.latency)} ms · ${t.label} · ${t.size}`
      : "";
  }
  summary.textContent = `${live} of ${tiles.size} live`;
}
setInterval(refreshStats, 500);

function onText(msg) {
  switch (msg.type) {
    case "hello": {
      if (Array.isArray(msg.scales) && msg.scales.every((x) => Number.isInteger(x) && x > 0)) {
        scales = msg.scales;
      }
      // A first guess of the offset (off by the one-way delay) until a pong refines it.
      if (!clockSamples.length && typeof msg.server_time_ms === "number") {
        clockOffset = msg.server_time_ms - Date.now();
      }
      const ids = new Set(msg.cameras.map((c) => c.id));
      for (const id of [...tiles.keys()]) if (!ids.has(id)) removeTile(id);
      for (const cam of msg.cameras) {
        const t = tiles.get(cam.id) || makeTile(cam);
        setState(t, cam.state, null);
        t.subscribed = false;
        t.maxWidth = 0;
      }
      layout();
      requestAnimationFrame(updateAll);
      break;
    }
    case "state": {
      const t = tiles.get(msg.camera);
      if (t) setState(t, msg.state, msg.error);
      break;
    }
    case "tier": {
      const t = tiles.get(msg.camera);
      if (!t) break;
      t.tier = msg;
      t.label = tierLabel(msg);
      t.el.dataset.codec = msg.codec || "jpeg";
      if ((msg.codec || "jpeg") === "jpeg" && t.video) { t.video.close(); t.video = null; }
      break;
    }
    case "video_config": {
      const t = tiles.get(msg.camera);
      if (t) configureVideo(t, msg);
      break;
    }
    case "camera_added": {
      if (!tiles.has(msg.camera.id)) { makeTile(msg.camera); layout(); requestAnimationFrame(updateAll); }
      break;
    }
    case "camera_changed": {
      const t = tiles.get(msg.camera.id);
      if (!t) break;
      t.el.querySelector(".name").textContent = msg.camera.name;
      if (msg.camera.state && msg.camera.state !== t.state) setState(t, msg.camera.state, null);
      if (msg.camera.width && msg.camera.width !== t.srcWidth) {
        // A new size: ask again for the tier that fits the tile.
        t.srcWidth = msg.camera.width;
        t.maxWidth = 0;
        updateSubscription(t);
      }
      break;
    }
    case "pong":
      onPong(msg);
      break;
    case "camera_removed":
      removeTile(msg.camera);
      layout();
      break;
    case "error":
      console.warn("camwall:", msg.code, msg.message);
      break;
  }
}

function connect() {
  connBadge.textContent = "connecting";
  connBadge.className = "badge reconnecting";
  ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    retryMs = 500;
    sendPing();
    connBadge.textContent = "connected";
    connBadge.className = "badge live";
  };
  ws.onmessage = (e) => (typeof e.data === "string" ? onText(JSON.parse(e.data)) : onFrame(e.data));
  ws.onclose = () => {
    for (const t of tiles.values()) t.subscribed = false;
    connBadge.textContent = `reconnecting in ${(retryMs / 1000).toFixed(1)} s`;
    connBadge.className = "badge reconnecting";
    // Server restarts: back off (with jitter) and the wall rebuilds itself from `hello`.
    setTimeout(connect, retryMs * (0.8 + Math.random() * 0.4));
    retryMs = Math.min(retryMs * 2, 15000);
  };
}

// Probe what this browser decodes, then connect (JPEG only when forced or unsupported).
(params.get("codec") === "jpeg" ? Promise.resolve([]) : supportedFamilies())
  .catch(() => [])
  .then((f) => { families = f; window.camwallFamilies = f; connect(); });

