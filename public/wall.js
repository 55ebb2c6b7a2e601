// camwall live wall: one WebSocket for every camera (protocol: docs/PROTOCOL.md). Each tile
// subscribes while visible, draws the newest frame on a canvas, and acknowledges it so the
// server can fit quality, size and frame rate to this browser's link and screen. Cameras whose
// codec this browser decodes (WebCodecs, secure contexts only) come as their own H.264/H.265;
// where WebCodecs is missing (plain http on a LAN address, older Safari) those cameras play
// over WebRTC instead, one peer connection per tile (webrtc.js), the WebSocket still carrying
// everything else; the rest, and every tile after a decoder or WebRTC failure, as JPEG.
// `?codec=jpeg` forces JPEG, `?codec=webcodecs` WebCodecs, `?codec=webrtc` WebRTC.
// `?view=ID` shows a view (views.js), `&tour=N` pages through it every N seconds; layout.js
// places the tiles, interact.js handles keyboard, zoom, swipe, fullscreen and snapshots.
// Activity events mark busy tiles, sort the view (`sort=activity`) and pick the most active.
// Sound (sound.js) is off until asked: a speaker button on each tile with audio, one heard.

import { supportedFamilies, supportsConfig, VideoTile } from "./video.js";
import { prepareOffer, webrtcAvailable, WebRtcTile } from "./webrtc.js";
import { AudioPlayer, audioFamilies } from "./sound.js";
import { applyLayout } from "./layout.js";
import { ALL, camerasOf, fillMenu, loadViews, Tour } from "./views.js";
import { attachGestures, downloadSnapshot, installKeys, toggleFullscreen, Zoom } from "./interact.js";
import { ReplayBar } from "./replay.js";
import { ensureSession } from "./session.js";

const wall = document.getElementById("wall");
const connBadge = document.getElementById("conn");
const summary = document.getElementById("summary");
const params = new URLSearchParams(location.search);
const token = params.get("token");
// Video families this browser decodes, probed once before connecting.
let families = [];
// Whether tiles of cameras that send H.264/H.265 play over WebRTC (no WebCodecs here, or
// `?codec=webrtc`), and what the server said of each camera's codec (`h264`, `h265`, `other`
// for one that sends no such video; unknown while it connects), from its status.
let useWebRtc = false;
const sources = new Map();
// Sound: the audio families this browser decodes over the WebSocket, each camera's audio
// codec family from the status (`aac`, `pcmu`, `pcma`, `opus`; null without audio), the
// page's player (made on the user's first click: browsers play sound only after a gesture),
// and whether sound is on (kept across reloads and tours) with the camera last asked for.
let audioFams = [];
const audioOf = new Map();
let player = null;
const sound = { on: localStorage.getItem("camwall.sound") === "on", pick: null };
// WebRTC carries these to every browser (AAC as the server's Opus transcode).
const RTC_AUDIO = ["aac", "pcmu", "pcma", "opus"];
// Without WebRTC, the status (each camera's audio) is read this often.
const AUDIO_STATUS_EVERY_MS = 15000;
// A tile whose WebRTC session failed plays over the WebSocket and tries again after this,
// twice as long after each further failure.
const RTC_RETRY_MS = 10000;
const RTC_RETRY_MAX_MS = 300000;
// The WebSocket tells a camera's state only to tiles subscribed there, which WebRTC tiles are
// not: the page reads the status this often while it uses WebRTC.
const STATUS_EVERY_MS = 5000;

const tiles = new Map(); // camera id -> tile state
let ws = null;
let retryMs = 500;
let focused = null;
// Downscale factors the server offers (from `hello`); full size only until it says.
let scales = [1];
// The view shown (the default: every camera, automatic grid) and, with `tour=N`, its pages.
let view = ALL;
let tour = null;
let grid = { cols: 1 };
// A tile whose newest picture is older than this shows its age: it is not live.
const STALE_MS = 2000;
// Activity (0..1, from the server's estimate of how much each picture changes; a cue from
// bitrate, not motion detection): a tile at or above this is marked active. "Sort by
// activity" reorders the view at most every ACTIVITY_SORT_MS, so tiles do not jump about.
const ACTIVE_LEVEL = 0.15;
const ACTIVITY_SORT_MS = 5000;
let sortByActivity = params.get("sort") === "activity";
// Views are edited on the settings page (or by hand): an open wall re-reads them this often and
// follows a change to the one it shows, so every screen shows the same.
const VIEWS_REFRESH_MS = 10000;
let lastSort = 0;

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
  el.tabIndex = 0;
  el.setAttribute("role", "button");
  el.dataset.camera = cam.id;
  el.innerHTML = `<div class="pic"><canvas></canvas><video muted autoplay playsinline></video></div><div class="msg"></div>
    <div class="age" hidden></div>
    <div class="bar"><span class="name"></span><span class="badge"></span>
    <span class="stats"></span>
    <button class="snap" type="button" title="Download a snapshot">snapshot</button>
    <button class="sound" type="button" title="Sound" aria-pressed="false" hidden>sound</button></div>`;
  const t = {
    srcWidth: cam.width || 0, name: cam.name || cam.id,
    id: cam.id, el, canvas: el.querySelector("canvas"), msg: el.querySelector(".msg"),
    badge: el.querySelector(".badge"), stats: el.querySelector(".stats"),
    age: el.querySelector(".age"),
    visible: false, onPage: true, subscribed: false, maxWidth: 0, pending: null, drawing: false,
    frames: [], drawn: 0, latency: 0, tier: null, state: cam.state, error: null,
    video: null, label: "", lastTs: 0, activity: 0,
    // WebRTC: the video element, the session (while one is open or opening), whether it shows
    // pictures, when to try again after a failure, and the camera's codec as the status said.
    videoEl: el.querySelector("video"), rtc: null, rtcLive: false, rtcRetryAt: 0, rtcFailures: 0,
    rtcStartMs: null, rtcFirstMs: null, rttAt: 0, source: sources.get(cam.id) ?? null,
    // Sound: heard now, and whether its WebSocket subscription asks for audio.
    soundBtn: el.querySelector(".sound"), heard: false, audioSub: false,
    // Replay (focused tiles): its bar, and the instant played over the WebSocket (null: live).
    replayBar: null, replayAt: null, replaySpeed: 1,
  };
  t.videoEl.muted = true;
  t.zoom = new Zoom(el, el.querySelector(".pic"));
  setName(t, t.name);
  el.addEventListener("click", (e) => {
    if (e.target.closest(".snap") || e.target.closest(".sound") || e.target.closest(".replay")) return;
    // The end of a drag (panning a zoomed picture) is no click.
    if (el.dataset.dragged) { el.dataset.dragged = ""; if (focused === t) return; }
    toggleFocus(t);
  });
  el.querySelector(".snap").addEventListener("click", (e) => {
    e.stopPropagation();
    downloadSnapshot(t.id, t.name, token)
      .then((file) => { window.camwallLastSnapshot = file; })
      .catch((err) => console.warn("camwall:", err.message));
  });
  t.soundBtn.addEventListener("click", (e) => {
    e.stopPropagation();
    toggleSound(t);
  });
  attachGestures(el, t.zoom, () => focused === t, (dir) => swipe(t, dir));
  wall.appendChild(el);
  observer.observe(el);
  tiles.set(cam.id, t);
  setState(t, cam.state, null);
  return t;
}

function setName(t, name) {
  t.name = name;
  t.el.querySelector(".name").textContent = name;
  t.el.setAttribute("aria-label", `${name}, ${t.badge.textContent || t.state}`);
}

// The view's cameras in the order last arranged (busiest first when sorting by activity).
let order = [];

// The tiles on screen, in that order (a tour shows one page of them).
function shown() {
  return order.map((id) => tiles.get(id)).filter((t) => t && t.onPage);
}

// Which cameras the view shows now: tiles for them, in order, the rest hidden (and so
// unsubscribed). Called on hello, on camera_added/removed and at each turn of a tour.
function arrange() {
  const ids = ordered();
  order = ids;
  const page = new Set(tour ? tour.current(ids) : ids);
  for (const id of ids) wall.appendChild(tiles.get(id).el);
  for (const t of tiles.values()) {
    t.onPage = page.has(t.id);
    t.el.hidden = !t.onPage;
  }
  if (focused && !focused.onPage) toggleFocus(focused);
  layout();
  applySound();
  requestAnimationFrame(() => { for (const x of tiles.values()) x.maxWidth = 0; updateAll(); });
}

// Whether this page can play tile `t`'s sound on the path it plays on.
function canHear(t) {
  const family = audioOf.get(t.id);
  if (!family) return false;
  return wantsWebRtc(t) || t.rtcLive ? RTC_AUDIO.includes(family) : audioFams.includes(family);
}

// The one tile heard: none while sound is off (or before the first click made the player);
// else the focused tile, the one last asked for, or the first on the page with sound.
function heardTile() {
  if (!sound.on || !player) return null;
  const list = shown().filter(canHear);
  if (focused && list.includes(focused)) return focused;
  return list.find((x) => x.id === sound.pick) || list[0] || null;
}

// Shows each tile's speaker, and moves the sound to the tile that should be heard: its
// WebSocket subscription asks for audio (or its WebRTC session is opened again with audio),
// and its video is held to the sound's clock.
function applySound() {
  const h = heardTile();
  for (const t of tiles.values()) {
    t.soundBtn.hidden = !canHear(t);
    t.soundBtn.setAttribute("aria-pressed", String(t === h || (sound.on && !player && canHear(t) && t.id === sound.pick)));
    if (t.heard === (t === h)) continue;
    t.heard = t === h;
    if (t.rtc && t.rtc.audio !== t.heard) stopRtc(t);
    t.videoEl.muted = !t.heard;
    if (!t.heard && player && player.camera === t.id) player.stop();
    if (t.video) t.video.clock = t.heard ? (pts) => player.delayMs(pts) : null;
    updateSubscription(t);
  }
}

// The speaker button: sound on for this tile (off when it is the one heard).
function toggleSound(t) {
  if (!player) player = new AudioPlayer();
  player.resume();
  if (sound.on && heardTile() === t) {
    sound.on = false;
  } else {
    sound.on = true;
    sound.pick = t.id;
  }
  localStorage.setItem("camwall.sound", sound.on ? "on" : "off");
  applySound();
}

// The view's cameras in its order, or busiest first when sorting by activity.
function ordered() {
  const ids = camerasOf(view, [...tiles.keys()]);
  if (!sortByActivity) return ids;
  const level = (id) => tiles.get(id).activity;
  return ids.map((id, i) => [id, i]).sort((a, b) => level(b[0]) - level(a[0]) || a[1] - b[1]).map((x) => x[0]);
}

// The camera that changes most: focused (brought onto the page if a tour hides it).
function focusMostActive() {
  const ids = camerasOf(view, [...tiles.keys()]);
  let best = null;
  for (const id of ids) { const t = tiles.get(id); if (!best || t.activity > best.activity) best = t; }
  if (!best) return;
  if (!best.onPage) {
    sortByActivity = true;
    document.getElementById("sort-activity").checked = true;
    if (tour) tour.page = 0;
    arrange();
  }
  if (focused !== best) toggleFocus(best);
}

function onActivity(msg) {
  const t = tiles.get(msg.camera);
  if (!t || typeof msg.level !== "number") return;
  t.activity = msg.level;
  t.el.style.setProperty("--act", msg.level.toFixed(2));
  t.el.classList.toggle("active", msg.level >= ACTIVE_LEVEL);
  if (sortByActivity && !focused && Date.now() - lastSort >= ACTIVITY_SORT_MS) {
    lastSort = Date.now();
    const before = shown().map((x) => x.id).join();
    const after = ordered();
    if ((tour ? tour.current(after) : after).join() !== before) arrange();
  }
}

// Swipe on a focused tile: the next or previous camera of the view.
function swipe(t, dir) {
  const list = shown();
  const i = list.indexOf(t);
  if (i < 0 || list.length < 2) return;
  focusTile(list[(i + dir + list.length) % list.length]);
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
  t.el.classList.toggle("down", state !== "streaming");
  t.el.setAttribute("aria-label", `${t.name || t.id}, ${label}`);
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
  const want = !document.hidden && t.onPage && t.visible && (!focused || focused === t);
  if (!want) {
    stopRtc(t);
    unsubscribe(t);
    return;
  }
  // Played back from the replay ring: the subscription asked for it stands, unless the sound
  // moved to or from this tile (then it goes on from the picture shown, with or without it).
  if (t.replayAt !== null) {
    if (t.subscribed && t.audioSub !== (t.heard && t.replaySpeed === 1 && audioFams.length > 0)) {
      const shownAt = t.replayBar && t.replayBar.shownTs;
      if (shownAt) t.replayAt = shownAt;
      t.subscribed = false;
    }
    if (!t.subscribed) sendReplay(t);
    return;
  }
  if (wantsWebRtc(t)) {
    if (!t.rtc) startRtc(t);
    // Pictures come over WebRTC: nothing of this camera over the WebSocket. Until the first
    // one, a tile that was on the WebSocket (a retry after a failure) keeps what it had.
    if (t.rtcLive) unsubscribe(t);
    if (t.rtcLive || !t.subscribed) return;
  } else if (t.rtc) {
    stopRtc(t);
  }
  // The heard tile's subscription asks for its audio; the others' do not (no audio sent).
  const audio = t.heard && !t.rtcLive ? audioFams : [];
  const same = t.audioSub === audio.length > 0;
  if (focused === t) {
    // A focused tile may be zoomed into: the full-size stream (no max_width).
    if (t.subscribed && t.maxWidth === Infinity && same) return;
    t.maxWidth = Infinity;
    t.subscribed = true;
    t.audioSub = audio.length > 0;
    send({ type: "subscribe", cameras: [t.id], quality: "auto", codecs: families, audio });
    return;
  }
  const maxWidth = wantedWidth(t);
  // Resubscribe only when the size changes enough to matter (tiers are whole fractions).
  if (t.subscribed && same && t.maxWidth !== Infinity && Math.abs(maxWidth - t.maxWidth) < t.maxWidth * 0.25) return;
  t.maxWidth = maxWidth;
  t.subscribed = true;
  t.audioSub = audio.length > 0;
  send({ type: "subscribe", cameras: [t.id], quality: "auto", max_width: maxWidth, codecs: families, audio });
}

// The tile's camera from `t.replayAt` over the WebSocket: its video for a page that decodes
// it, JPEG frames made on the server otherwise (replay.js shows recorded stills only while
// the socket is down), with its recorded sound
// when the tile is heard and plays at 1x (the server sends none faster).
function sendReplay(t) {
  stopRtc(t);
  t.subscribed = true;
  const audio = t.heard && t.replaySpeed === 1 ? audioFams : [];
  t.audioSub = audio.length > 0;
  send({ type: "subscribe", cameras: [t.id], codecs: families, audio, at: t.replayAt, speed: t.replaySpeed });
}

function replayHooks(t) {
  return {
    play: (at, speed) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      t.replayAt = at;
      t.replaySpeed = speed;
      sendReplay(t);
      return true;
    },
    live: () => {
      t.replayAt = null;
      t.subscribed = false;
      t.maxWidth = 0;
      updateSubscription(t);
    },
  };
}

// Whether the camera sends video this page decodes (its codec as the status said).
function unsubscribe(t) {
  if (t.subscribed) send({ type: "unsubscribe", cameras: [t.id] });
  t.subscribed = false;
  t.audioSub = false;
}

function updateAll() {
  for (const t of tiles.values()) updateSubscription(t);
}

// Whether a tile plays over WebRTC now: on a page that uses it, for a camera that sends its
// own H.264/H.265 (or may: not known yet), unless its session failed a moment ago.
function wantsWebRtc(t) {
  return useWebRtc && t.source !== "other" && t.state !== "disabled" && t.state !== "stopped"
    && Date.now() >= t.rtcRetryAt;
}

// Opens the tile's WebRTC session (WHEP), or takes the one opened early for its camera; the
// video element takes over at its first picture.
function startRtc(t) {
  const e = early.get(t.id);
  early.delete(t.id);
  let rtc = null;
  const callbacks = {
    onFrame: (meta) => rtcFrame(t, rtc, meta),
    onFail: (err) => rtcFailed(t, rtc, err),
  };
  // A session opened early has no audio: the heard tile opens its own.
  if (e && t.heard) e.rtc.close();
  if (e && !e.rtc.closed && !t.heard) {
    rtc = e.rtc;
    t.rtcStartMs = e.at;
    rtc.adopt(t.videoEl, callbacks);
  } else {
    rtc = new WebRtcTile(t.videoEl, t.id, token, { ...callbacks, audio: t.heard });
    t.rtcStartMs = performance.now();
    rtc.start();
  }
  t.rtc = rtc;
  t.videoEl.muted = !t.heard;
}

// Sessions opened from the status, before the WebSocket's `hello` makes the tiles: offer,
// answer and connection then overlap the socket's start, and the page's first pictures come
// a round of requests sooner. For the view's first cameras that send H.264/H.265; one no tile
// takes within EARLY_MS is ended.
const early = new Map();
const EARLY_MAX = 16;
// Long enough for a socket on a slow or busy link to say `hello`: a session ended too soon
// would be opened again by its tile.
const EARLY_MS = 15000;
function startEarly(cams) {
  const playable = new Set(cams.filter((c) => c.state === "streaming" && ["h264", "h265"].includes(sources.get(c.id))).map((c) => c.id));
  const ids = camerasOf(view, cams.map((c) => c.id)).filter((id) => playable.has(id));
  for (const id of ids.slice(0, EARLY_MAX)) {
    if (early.has(id) || tiles.has(id)) continue;
    const rtc = new WebRtcTile(null, id, token);
    early.set(id, { rtc, at: performance.now() });
    rtc.start();
    setTimeout(() => {
      if (early.get(id) && early.get(id).rtc === rtc) {
        early.delete(id);
        rtc.close();
      }
    }, EARLY_MS);
  }
}

// Ends the tile's WebRTC session (DELETE), if any; the canvas shows again.
function stopRtc(t) {
  if (t.rtc) t.rtc.close();
  t.rtc = null;
  if (t.rtcLive) {
    t.rtcLive = false;
    t.el.classList.remove("webrtc");
    t.size = null;
  }
}

// A picture shown by the tile's video element (requestVideoFrameCallback's metadata).
function rtcFrame(t, rtc, meta) {
  if (t.rtc !== rtc) return;
  if (!t.rtcLive) {
    t.rtcLive = true;
    t.rtcFailures = 0;
    t.rtcFirstMs = performance.now();
    t.latency = 0;
    t.el.classList.add("webrtc");
    t.el.dataset.path = "webrtc";
    const names = { h264: "H.264", h265: "H.265" };
    t.label = `webrtc${names[t.source] ? ` ${names[t.source]}` : ""}`;
    markFirstPaint("webrtc");
    // What stood in until now (JPEG or video over the WebSocket) stops.
    unsubscribe(t);
    if (t.video) { t.video.close(); t.video = null; }
    if (player && player.camera === t.id) player.stop();
  }
  const now = Date.now();
  t.frames.push(now);
  t.drawn++;
  t.lastTs = serverNow();
  t.size = `${t.videoEl.videoWidth}×${t.videoEl.videoHeight}`;
  // From arrival to display in this browser, plus half the round trip: the camera's frames
  // leave the server as they come.
  if (typeof meta.receiveTime === "number" && typeof meta.expectedDisplayTime === "number") {
    const latency = Math.max(0, meta.expectedDisplayTime - meta.receiveTime) + rtc.rtt * 500;
    t.latency = t.latency ? t.latency * 0.8 + latency * 0.2 : latency;
  }
}

// The session could not start, or was lost: the tile goes back to the WebSocket (JPEG, or the
// camera's video where WebCodecs decodes it) and tries WebRTC again later; never again on this
// page when this browser or the request is what the server refused.
function rtcFailed(t, rtc, err) {
  if (t.rtc !== rtc) return;
  console.warn("camwall: WebRTC", t.id, err.status || "", err.code, err.message);
  t.rtc = null;
  stopRtc(t);
  t.rtcFailures++;
  const final = [400, 401, 403, 415].includes(err.status);
  const wait = Math.min(RTC_RETRY_MS * 2 ** (t.rtcFailures - 1), RTC_RETRY_MAX_MS);
  t.rtcRetryAt = final ? Infinity : Date.now() + wait;
  if (!final) setTimeout(() => { if (tiles.get(t.id) === t) { applySound(); updateSubscription(t); } }, wait + 50);
  applySound();
  updateSubscription(t);
}

// What the server says of every camera: each camera's codec (which tiles try WebRTC) and, for
// tiles on WebRTC, their state.
async function refreshStatus() {
  let cams = null;
  try {
    const r = await fetch("/api/ip-cameras/status", { headers: token ? { Authorization: `Bearer ${token}` } : {}, cache: "no-store" });
    if (r.ok) cams = (await r.json()).cameras;
  } catch (_) {
    // The server restarting: the next round asks again.
  }
  if (!Array.isArray(cams)) return null;
  for (const cam of cams) {
    // The source's codec as FFmpeg names it (`h264`, `hevc`, `mjpeg`, `rawvideo`), or for a
    // camera ingested by another node of a cluster, that of the video relayed here.
    const codec = cam.codec || (cam.video && cam.video.codec);
    const source = codec === "h264" ? "h264" : codec === "hevc" || codec === "h265" ? "h265" : codec ? "other" : null;
    sources.set(cam.id, source);
    audioOf.set(cam.id, cam.audio && cam.audio.codec ? cam.audio.codec : null);
    const t = tiles.get(cam.id);
    if (!t) continue;
    t.source = source;
    if (t.rtc && !t.subscribed && cam.state && (cam.state !== t.state || (cam.last_error || null) !== t.error)) {
      setState(t, cam.state, cam.last_error || null);
    }
  }
  applySound();
  updateAll();
  return cams;
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
  stopRtc(t);
  if (focused === t) toggleFocus(t);
  observer.unobserve(t.el);
  t.el.remove();
  tiles.delete(id);
}

function toggleFocus(t) {
  const was = focused;
  focused = focused === t ? null : t;
  if (was) was.zoom.reset();
  if (was && was.replayBar) {
    // Leaving a focused tile ends its replay: the grid is live.
    was.replayBar.goLive();
    was.replayBar.destroy();
    was.replayBar = null;
  }
  if (focused) focused.replayBar = new ReplayBar(focused, token, replayHooks(focused));
  document.body.classList.toggle("focused", !!focused);
  for (const x of tiles.values()) x.el.classList.toggle("focus", x === focused);
  if (focused) focused.el.focus();
  layout();
  applySound();
  // Sizes change with focus: let layout settle, then ask for the right tiers.
  requestAnimationFrame(() => { for (const x of tiles.values()) x.maxWidth = 0; updateAll(); });
}

function focusTile(t) {
  if (focused !== t) toggleFocus(t);
}

installKeys({
  tiles: shown,
  cols: () => grid.cols,
  focused: () => focused,
  focus: focusTile,
  unfocus: () => { if (focused) { const t = focused; toggleFocus(t); t.el.focus(); } },
  // ←/→ on a focused tile move its replay 10 s.
  seek: (dir) => { if (!focused || !focused.replayBar) return false; focused.replayBar.step(dir); return true; },
  fullscreen: () => toggleFullscreen(focused ? focused.el : document.documentElement),
});
document.addEventListener("visibilitychange", updateAll);
// A page being left ends its WebRTC sessions (DELETE); one restored from the cache opens them
// again.
window.addEventListener("pagehide", () => { for (const t of tiles.values()) stopRtc(t); });
window.addEventListener("pageshow", (e) => { if (e.persisted) updateAll(); });

function layout() {
  if (focused) return;
  grid = applyLayout(wall, shown().map((t) => t.el), view);
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
  // Sound goes to the player; the link is measured by the pictures' acknowledgements.
  if (header.kind === "audio") {
    if (player && t.heard) player.decode(t.id, header, new Uint8Array(buf, 3 + n));
    return;
  }
  // Acknowledged as it arrives: the server measures the link by these, and this page's own
  // decoding and drawing are not the link's (the page reports them apart, see reportDecoders).
  send({ type: "ack", camera: header.camera, seq: header.seq });
  if (header.kind === "video") {
    if (t.video) {
      // The smallest backlog seen at an arrival since the last report: a burst (the GOP sent
      // at subscribe) drains within it, a decoder that cannot keep up never does.
      if (t.video.decoder) t.minQueue = Math.min(t.minQueue ?? Infinity, t.video.decoder.decodeQueueSize);
      t.video.decode(header, new Uint8Array(buf, 3 + n));
    }
    return;
  }
  // Latest wins: a frame that arrives while the previous one decodes replaces any waiting one.
  if (t.pending) t.dropped = (t.dropped || 0) + 1;
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
      t.lastTs = header.ts;
      t.drawn++;
      if (t.replayAt !== null) {
        // A recorded picture: its age is not the link's latency, its size not a live tier's.
        if (t.replayBar) t.replayBar.shown(header.ts);
        continue;
      }
      const now = Date.now();
      // Capture to display on the server's clock (0 if the estimate is a little off).
      const latency = Math.max(0, Math.round(serverNow() - header.ts));
      t.latency = t.latency ? t.latency * 0.8 + latency * 0.2 : latency;
      t.frames.push(now);
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

// What a tile gets, as its stats line says it: "H.264 full", "H.264 full sub" (the camera's sub
// stream), "H.264 keyframes", "JPEG q80 1/2", and why when it is reduced: "(link 1.0 of 2.7 Mbit/s)" or "(this device is busy)".
function tierLabel(msg) {
  const names = { h264: "H.264", h265: "H.265" };
  const what = (msg.codec && msg.codec !== "jpeg"
    ? `${names[msg.codec] || msg.codec} ${msg.mode}`
    : `JPEG q${msg.quality}${msg.scale > 1 ? ` 1/${msg.scale}` : ""}`)
    + (msg.stream === "sub" ? " sub" : "");
  if (msg.reason === "viewer") return `${what} (this device is busy)`;
  if (msg.reason === "link") {
    const best = msg.best_kbps ? ` of ${(msg.best_kbps / 1000).toFixed(1)}` : "";
    const rate = linkKbps ? `link ${(linkKbps / 1000).toFixed(1)}${best} Mbit/s` : "link full";
    return `${what} (${rate})`;
  }
  return what;
}

// Once a second, how each watched tile keeps up: chunks that stayed waiting in its video
// decoder, or JPEG frames replaced before they were drawn. The server steps a tile down for
// this machine's sake only on these reports, never by how fast acknowledgements come.
let linkKbps = null;
function reportDecoders() {
  for (const t of tiles.values()) {
    if (!t.subscribed) continue;
    const queue = Number.isFinite(t.minQueue) ? t.minQueue : 0;
    const dropped = t.dropped || 0;
    t.minQueue = Infinity;
    t.dropped = 0;
    if (queue > 0 || dropped > 0) send({ type: "decoder", camera: t.id, queue, dropped });
  }
}
setInterval(reportDecoders, 1000);

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
      t.lastTs = ts;
      t.drawn++;
      if (t.replayAt !== null) {
        // A recorded picture: its age is not the link's latency.
        if (t.replayBar) t.replayBar.shown(ts);
        return;
      }
      const now = Date.now();
      const latency = Math.max(0, Math.round(serverNow() - ts));
      t.latency = t.latency ? t.latency * 0.8 + latency * 0.2 : latency;
      t.frames.push(now);
      t.size = `${t.canvas.width}×${t.canvas.height}`;
    };
  }
  t.video.clock = t.heard && player ? (pts) => player.delayMs(pts) : null;
  t.video.configure(cfg);
}

function refreshStats() {
  const now = Date.now();
  let live = 0;
  for (const t of tiles.values()) {
    t.frames = t.frames.filter((x) => now - x < 2000);
    const fps = t.frames.length / 2;
    if (t.state === "streaming") live++;
    const playing = t.subscribed || t.rtcLive;
    t.stats.textContent = playing && t.size
      ? `${fps.toFixed(0)} fps · ${Math.round(t.latency)} ms · ${t.label} · ${t.size}`
      : "";
    // A picture that stopped changing must not pass for live: its age goes over it.
    const age = t.lastTs ? serverNow() - t.lastTs : 0;
    const stale = playing && age > STALE_MS;
    // The WebRTC connection's round trip, for the latency shown, every few seconds.
    if (t.rtcLive && now - t.rttAt > 2000) { t.rttAt = now; t.rtc.refreshRtt(); }
    t.age.hidden = !stale;
    if (stale) t.age.textContent = `${formatAge(age)} old`;
    t.el.classList.toggle("stale", stale);
  }
  summary.textContent = `${live} of ${tiles.size} live`;
}
setInterval(refreshStats, 500);

function formatAge(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

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
        setState(t, cam.state, cam.last_error || null);
        t.subscribed = false;
        t.maxWidth = 0;
      }
      arrange();
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
      t.el.dataset.codec = msg.codec || "jpeg";
      if (!t.rtcLive) {
        t.label = tierLabel(msg);
        t.el.dataset.path = (msg.codec || "jpeg") === "jpeg" ? "jpeg" : "webcodecs";
      }
      if ((msg.codec || "jpeg") === "jpeg" && t.video) { t.video.close(); t.video = null; }
      break;
    }
    case "audio_config": {
      const t = tiles.get(msg.camera);
      if (!t || !t.heard || !player) break;
      player.configure(t.id, msg);
      if (t.video) t.video.clock = (pts) => player.delayMs(pts);
      break;
    }
    case "video_config": {
      const t = tiles.get(msg.camera);
      // One sent before the tile moved to WebRTC has nothing left to configure.
      if (t && !t.rtcLive) configureVideo(t, msg);
      break;
    }
    case "camera_added": {
      if (!tiles.has(msg.camera.id)) { makeTile(msg.camera); arrange(); }
      break;
    }
    case "camera_changed": {
      const t = tiles.get(msg.camera.id);
      if (!t) break;
      setName(t, msg.camera.name);
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
    case "link":
      // The server's estimate of this connection's path: shown, never acted on here.
      linkKbps = msg.rate_kbps;
      if (connBadge.className === "badge live") {
        const rate = msg.rate_kbps == null ? "" : `, ${(msg.rate_kbps / 1000).toFixed(1)} Mbit/s`;
        connBadge.textContent = `connected · ${msg.rtt_ms} ms${rate}`;
        connBadge.title = `round trip ${msg.rtt_ms} ms (best ${msg.min_rtt_ms} ms)${rate}`;
      }
      break;
    case "activity":
      onActivity(msg);
      break;
    case "camera_removed":
      removeTile(msg.camera);
      arrange();
      break;
    case "replay_ended": {
      const t = tiles.get(msg.camera);
      if (t && t.replayBar) t.replayBar.goLive();
      break;
    }
    case "error":
      console.warn("camwall:", msg.code, msg.message);
      if (msg.code === "not_in_replay") {
        const t = tiles.get(msg.camera);
        if (t && t.replayBar) t.replayBar.goLive();
      }
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
    // Activity of every camera, on screen or not: sorting and "most active" need them all.
    send({ type: "activity", cameras: ["*"] });
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

// What the page shows, for people reading the console and for tests.
window.camwall = {
  view: () => view.id,
  shown: () => shown().map((t) => t.id),
  cols: () => grid.cols,
  focused: () => (focused ? focused.id : null),
  zoom: () => (focused ? focused.zoom.z : 1),
  subscribed: () => [...tiles.values()].filter((t) => t.subscribed).map((t) => t.id),
  // How each tile plays: "webrtc", "webcodecs", "jpeg" ("" while it shows nothing); for its
  // WebRTC session, the pictures so far and when (ms since navigation) it started, its offer
  // went out, the answer came, it connected and the first picture showed.
  // Pictures drawn so far per tile, on any path: a test awaits them instead of reading a rate.
  drawn: () => Object.fromEntries([...tiles.values()].map((t) => [t.id, t.drawn])),
  paths: () => Object.fromEntries([...tiles.values()].map((t) => [t.id, t.rtcLive ? "webrtc" : t.subscribed ? t.el.dataset.path || "" : ""])),
  webrtc: () => Object.fromEntries([...tiles.values()].filter((t) => t.rtc).map((t) => [t.id, {
    live: t.rtcLive, frames: t.rtc.frames, startMs: t.rtcStartMs, ...t.rtc.times,
    firstMs: t.rtcLive ? t.rtcFirstMs : null,
  }])),
  activity: () => Object.fromEntries([...tiles.values()].map((t) => [t.id, t.activity])),
  active: () => [...tiles.values()].filter((t) => t.el.classList.contains("active")).map((t) => t.id),
  page: () => (tour ? tour.page : 0),
  // The focused tile's replay: live or the instant shown, its label, the ring's span.
  replay: () => (focused && focused.replayBar ? focused.replayBar.state() : null),
  // Sound: on or off, the tile heard, frames decoded and the clock's restarts, the context's
  // state, the last second heard (mono) at its rate, and the heard tile's picture-to-sound
  // offsets at paint (ms).
  sound: () => {
    const h = heardTile();
    return {
      on: sound.on, heard: h ? h.id : null, speakers: [...tiles.values()].filter((t) => !t.soundBtn.hidden).map((t) => t.id),
      decoded: player ? player.decoded : 0, restarts: player ? player.restarts : 0,
      state: player ? player.ctx.state : null, rate: player ? player.keepRate : 0,
      skews: h && h.video ? [...h.video.skews] : [],
      rtcAudio: h && h.rtc && h.rtc.stream ? h.rtc.stream.getAudioTracks().length : 0,
    };
  },
  heardSamples: () => (player ? Array.from(player.kept()) : []),
};

// The views as the server has them now: the menu follows, and so does the view on screen if
// it was edited (or back to every camera if it was removed).
let knownViews = "";
async function refreshViews() {
  const views = await loadViews(token);
  const text = JSON.stringify(views);
  if (text === knownViews) return;
  knownViews = text;
  const select = document.getElementById("views");
  const picked = select.value;
  select.textContent = "";
  for (const v of [ALL, ...views]) select.add(new Option(v.name || v.id, v.id, false, v.id === picked));
  if (view === ALL) return;
  const now = views.find((v) => v.id === view.id) || ALL;
  if (JSON.stringify(now) !== JSON.stringify(view)) {
    view = now;
    arrange();
  }
}

// The view (and tour) the address asks for, the menu, what this browser decodes; then connect.
async function start() {
  // Users configured and no session: to the login page (this never returns then).
  await ensureSession(token);
  const codec = params.get("codec");
  // The views, what this browser decodes and (where it plays WebRTC) the cameras, at once.
  const viewsLoaded = loadViews(token);
  families = codec !== "jpeg" ? await supportedFamilies().catch(() => []) : [];
  window.camwallFamilies = families;
  audioFams = codec !== "jpeg" ? await audioFamilies().catch(() => []) : [];
  // WebRTC where WebCodecs decodes nothing here (or when asked), unless asked for another.
  useWebRtc = webrtcAvailable() && (codec === "webrtc" || (!families.length && codec !== "jpeg" && codec !== "webcodecs"));
  window.camwallWebRtc = useWebRtc;
  const status = useWebRtc ? refreshStatus() : null;
  if (useWebRtc) prepareOffer();
  const views = await viewsLoaded;
  const wanted = params.get("view");
  view = views.find((v) => v.id === wanted) || ALL;
  if (wanted && view === ALL && wanted !== ALL.id) console.warn("camwall: no view", wanted);
  fillMenu(document.getElementById("views"), views, view);
  knownViews = JSON.stringify(views);
  setInterval(refreshViews, VIEWS_REFRESH_MS);
  const seconds = Number(params.get("tour"));
  if (seconds > 0) {
    tour = new Tour(view, seconds, arrange);
    tour.start(() => camerasOf(view, [...tiles.keys()]));
  }
  document.title = view === ALL ? "camwall" : `${view.name || view.id} · camwall`;
  document.getElementById("fullscreen").addEventListener("click", () => toggleFullscreen(document.documentElement));
  const sortBox = document.getElementById("sort-activity");
  sortBox.checked = sortByActivity;
  sortBox.addEventListener("change", () => { sortByActivity = sortBox.checked; lastSort = Date.now(); arrange(); });
  document.getElementById("most-active").addEventListener("click", focusMostActive);
  if (status) {
    status.then((cams) => { if (cams && !tour) startEarly(cams); });
    setInterval(refreshStatus, STATUS_EVERY_MS);
  } else {
    // Which cameras have sound (the speakers) comes from the status.
    refreshStatus();
    setInterval(refreshStatus, AUDIO_STATUS_EVERY_MS);
  }
  // Sound left on by an earlier visit starts at the first click anywhere (a gesture).
  document.addEventListener("pointerdown", () => {
    if (sound.on && !player) { player = new AudioPlayer(); player.resume(); applySound(); }
  });
  connect();
}
start();

