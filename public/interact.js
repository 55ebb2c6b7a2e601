// camwall wall page: how people handle tiles. Keyboard (arrows, Enter, Escape, f, digits),
// digital zoom and pan of a focused tile (wheel and drag, pinch on touch screens), swipe
// between cameras on a phone, fullscreen, and the snapshot download.

// `Front door-2024-05-01_13-45-07.jpg`: the camera's name and the local time, in characters
// every file system takes.
export function snapshotName(name, date = new Date()) {
  const p = (n) => String(n).padStart(2, "0");
  const safe = String(name).replace(/[^\p{L}\p{N} _-]+/gu, "_").trim() || "camera";
  const t = `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}_${p(date.getHours())}-${p(date.getMinutes())}-${p(date.getSeconds())}`;
  return `${safe}-${t}.jpg`;
}

// Downloads the camera's newest picture at full size and the best quality.
export async function downloadSnapshot(id, name, token) {
  const u = new URL(`/api/ip-cameras/frame/${encodeURIComponent(id)}`, location.href);
  if (token) u.searchParams.set("token", token);
  const r = await fetch(u.href, { cache: "no-store" });
  if (!r.ok) throw new Error(`snapshot: ${r.status}`);
  const blob = await r.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = snapshotName(name);
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return a.download;
}

export function toggleFullscreen(el) {
  if (document.fullscreenElement) return document.exitFullscreen().catch(() => {});
  if (el.requestFullscreen) return el.requestFullscreen().catch(() => {});
}

const MAX_ZOOM = 8;

// Zoom and pan of one tile's picture: a CSS transform of its canvas, so nothing is re-decoded.
export class Zoom {
  constructor(el, target) {
    this.el = el;
    this.target = target;
    this.z = 1; this.x = 0; this.y = 0;
    this.pointers = new Map();
    this.pinch = null;
  }

  reset() {
    this.z = 1; this.x = 0; this.y = 0;
    this.pointers.clear();
    this.pinch = null;
    this.apply();
  }

  // Zooms by `factor` keeping the point (px, py), in tile pixels, where it is.
  zoomAt(factor, px, py) {
    const z = Math.min(MAX_ZOOM, Math.max(1, this.z * factor));
    const k = z / this.z;
    this.x = px - (px - this.x) * k;
    this.y = py - (py - this.y) * k;
    this.z = z;
    this.apply();
  }

  pan(dx, dy) {
    this.x += dx; this.y += dy;
    this.apply();
  }

  apply() {
    // The picture always covers the tile: no panning off into the void.
    const W = this.el.clientWidth, H = this.el.clientHeight;
    this.x = Math.min(0, Math.max(W - W * this.z, this.x));
    this.y = Math.min(0, Math.max(H - H * this.z, this.y));
    if (this.z === 1) { this.x = 0; this.y = 0; }
    this.target.style.transform = this.z === 1 ? "" : `translate(${this.x}px, ${this.y}px) scale(${this.z})`;
    this.el.classList.toggle("zoomed", this.z > 1);
  }
}

// Wires wheel, drag, pinch and swipe on a tile; `active()` says whether the tile is the focused
// one (only it zooms), `onSwipe(+1 | -1)` moves to the next or previous camera.
export function attachGestures(el, zoom, active, onSwipe) {
  el.addEventListener("wheel", (e) => {
    if (!active()) return;
    e.preventDefault();
    const r = el.getBoundingClientRect();
    zoom.zoomAt(Math.exp(-e.deltaY * 0.002), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let start = null;
  el.addEventListener("pointerdown", (e) => {
    if (!active()) return;
    zoom.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (zoom.pointers.size === 1) start = { x: e.clientX, y: e.clientY, moved: false };
    if (zoom.pointers.size === 2) {
      const [a, b] = [...zoom.pointers.values()];
      zoom.pinch = Math.hypot(a.x - b.x, a.y - b.y);
    }
    try { el.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
  });
  el.addEventListener("pointermove", (e) => {
    const prev = zoom.pointers.get(e.pointerId);
    if (!prev || !active()) return;
    const cur = { x: e.clientX, y: e.clientY };
    zoom.pointers.set(e.pointerId, cur);
    if (zoom.pointers.size === 2 && zoom.pinch) {
      const [a, b] = [...zoom.pointers.values()];
      const d = Math.hypot(a.x - b.x, a.y - b.y);
      const r = el.getBoundingClientRect();
      zoom.zoomAt(d / zoom.pinch, (a.x + b.x) / 2 - r.left, (a.y + b.y) / 2 - r.top);
      zoom.pinch = d;
    } else if (zoom.pointers.size === 1 && zoom.z > 1) {
      zoom.pan(cur.x - prev.x, cur.y - prev.y);
    }
    if (start && Math.hypot(cur.x - start.x, cur.y - start.y) > 8) start.moved = true;
  });
  const up = (e) => {
    if (!zoom.pointers.has(e.pointerId)) return;
    zoom.pointers.delete(e.pointerId);
    if (zoom.pointers.size < 2) zoom.pinch = null;
    if (start && zoom.pointers.size === 0) {
      const dx = e.clientX - start.x, dy = e.clientY - start.y;
      // A swipe: mostly sideways, long enough, on a picture that is not zoomed in.
      if (zoom.z === 1 && Math.abs(dx) > 60 && Math.abs(dx) > 2 * Math.abs(dy)) onSwipe(dx < 0 ? 1 : -1);
      el.dataset.dragged = start.moved ? "1" : "";
      start = null;
    }
  };
  el.addEventListener("pointerup", up);
  el.addEventListener("pointercancel", up);
}

// Keyboard: arrows move between tiles (by the grid's columns; ←/→ scrub a focused tile's
// replay when `api.seek` takes them), Enter focuses, Escape returns,
// `f` goes fullscreen, digits 1-9 jump to that tile. `api` is the wall:
// {tiles() on screen in order, cols(), focused(), focus(t), unfocus(), fullscreen(), seek(dir)}.
export function installKeys(api) {
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.target && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(e.target.tagName) && e.key !== "Escape") return;
    const list = api.tiles();
    if (!list.length) return;
    const at = list.findIndex((t) => t.el === document.activeElement);
    const focused = api.focused();
    const move = (i) => {
      const t = list[(i + list.length) % list.length];
      if (focused && focused !== t) api.focus(t);
      t.el.focus();
    };
    const cur = at >= 0 ? at : focused ? list.indexOf(focused) : -1;
    switch (e.key) {
      case "ArrowRight": if (!(api.seek && api.seek(1))) move(cur + 1); break;
      case "ArrowLeft": if (!(api.seek && api.seek(-1))) move(cur < 0 ? list.length - 1 : cur - 1); break;
      case "ArrowDown": move(cur < 0 ? 0 : focused ? cur + 1 : Math.min(list.length - 1, cur + api.cols())); break;
      case "ArrowUp": move(cur < 0 ? 0 : focused ? cur - 1 : Math.max(0, cur - api.cols())); break;
      case "Enter":
      case " ":
        if (cur < 0) return;
        if (focused === list[cur]) api.unfocus(); else api.focus(list[cur]);
        break;
      case "Escape":
        if (!focused) return;
        api.unfocus();
        break;
      case "f":
      case "F":
        api.fullscreen();
        break;
      default:
        if (/^[1-9]$/.test(e.key) && Number(e.key) <= list.length) move(Number(e.key) - 1);
        else return;
    }
    e.preventDefault();
  });
}
