// camwall wall page: scrubbing back on a focused tile. A bar over the picture's foot shows the
// camera's replay ring (GET /api/ip-cameras/{id}/replay: its span and its gaps) and moves the
// tile to an instant: played over the WebSocket (subscribe with `at`: the camera's video where
// the page decodes it, JPEG frames otherwise), or, while the socket is down, as recorded
// pictures (`frame?at=`) stepped at the speed chosen.
// While the tile is not live it says so in red, with the instant shown; "live" comes back.

const STEP_MS = 10000;
const REFRESH_MS = 5000;
const SPEEDS = [1, 2, 4];
// Recorded pictures (while the WebSocket is down) are fetched this often.
const STILL_EVERY_MS = 500;

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export class ReplayBar {
  // `hooks.play(at, speed)`: plays the tile from `at` over the WebSocket; false when the socket
  // is down (then this bar shows recorded pictures). `hooks.live()`: back to
  // the live stream.
  constructor(tile, token, hooks) {
    this.t = tile;
    this.token = token;
    this.hooks = hooks;
    this.span = null;
    this.at = null; // where the replay started (ms), or null: live
    this.speed = 1;
    this.started = 0; // performance.now() when it started
    this.shownTs = null; // the newest replayed picture painted
    this.stills = null;
    this.markMs = null; // where a marked clip starts (ms), or null: the last 30 s
    const el = document.createElement("div");
    el.className = "replay";
    el.innerHTML = `<span class="rlabel">LIVE</span><input class="scrub" type="range" aria-label="Replay position">
      <button class="back" type="button" title="10 s back (←)">−10 s</button>
      <button class="fwd" type="button" title="10 s on (→)">+10 s</button>
      <button class="speed" type="button" title="Replay speed">1×</button>
      <button class="live" type="button" title="Back to live">live</button>
      <button class="mark" type="button" title="Mark where the clip starts (again: unmark)">mark</button>
      <a class="clip" title="Save the marked span, else the last 30 s of what is shown, as MP4">save clip</a>`;
    this.el = el;
    this.label = el.querySelector(".rlabel");
    this.scrub = el.querySelector(".scrub");
    this.still = document.createElement("img");
    this.still.className = "rstill";
    this.still.hidden = true;
    tile.el.querySelector(".pic").appendChild(this.still);
    tile.el.appendChild(el);
    // Clicks here are the bar's, not the tile's (a click on the tile leaves focus).
    el.addEventListener("click", (e) => e.stopPropagation());
    el.addEventListener("pointerdown", (e) => e.stopPropagation());
    this.scrub.addEventListener("change", () => this.seek(Number(this.scrub.value)));
    el.querySelector(".back").addEventListener("click", () => this.step(-1));
    el.querySelector(".fwd").addEventListener("click", () => this.step(1));
    el.querySelector(".live").addEventListener("click", () => this.goLive());
    el.querySelector(".mark").addEventListener("click", (e) => {
      this.markMs = this.markMs === null ? Math.round(this.position() ?? Date.now()) : null;
      e.target.setAttribute("aria-pressed", String(this.markMs !== null));
      e.target.textContent = this.markMs === null ? "mark" : `from ${clock(this.markMs)}`;
      this.render();
    });
    el.querySelector(".speed").addEventListener("click", (e) => {
      this.speed = SPEEDS[(SPEEDS.indexOf(this.speed) + 1) % SPEEDS.length];
      e.target.textContent = `${this.speed}×`;
      if (this.at !== null) this.seek(this.position());
    });
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.ticker = setInterval(() => this.render(), 250);
  }

  url(path) {
    const u = new URL(path, location.href);
    if (this.token) u.searchParams.set("token", this.token);
    return u.href;
  }

  async refresh() {
    try {
      const r = await fetch(this.url(`/api/ip-cameras/${encodeURIComponent(this.t.id)}/replay`));
      this.span = r.ok ? await r.json() : null;
    } catch (_) {
      this.span = null;
    }
    this.render();
  }

  // The instant shown now (ms), or null when live.
  position() {
    if (this.at === null) return null;
    if (this.shownTs !== null) return this.shownTs;
    return this.at + (performance.now() - this.started) * this.speed;
  }

  seek(at) {
    if (!this.span || this.span.from === null) return;
    at = Math.max(this.span.from, Math.min(at, Date.now()));
    this.at = at;
    this.started = performance.now();
    this.shownTs = null;
    this.stopStills();
    this.t.el.classList.add("replaying");
    if (!this.hooks.play(at, this.speed)) this.startStills();
    this.render();
  }

  step(dir) {
    const from = this.position() ?? Date.now();
    if (dir > 0 && this.at !== null && from + STEP_MS >= Date.now() - 1000) return this.goLive();
    this.seek(from + dir * STEP_MS);
  }

  // A replayed picture was painted (its capture time).
  shown(ts) {
    if (this.at !== null) this.shownTs = ts;
  }

  goLive() {
    if (this.at === null) return;
    this.at = null;
    this.shownTs = null;
    this.stopStills();
    this.t.el.classList.remove("replaying");
    this.hooks.live();
    this.render();
  }

  // Recorded pictures one after another, while the WebSocket is down.
  startStills() {
    this.still.hidden = false;
    const next = () => {
      const at = Math.round(this.position());
      if (at >= Date.now() - 1000) return this.goLive();
      const img = new Image();
      img.onload = () => { this.still.src = img.src; this.shownTs = at; };
      img.src = this.url(`/api/ip-cameras/frame/${encodeURIComponent(this.t.id)}?at=${at}`);
    };
    next();
    this.stills = setInterval(next, STILL_EVERY_MS);
  }

  stopStills() {
    clearInterval(this.stills);
    this.stills = null;
    this.still.hidden = true;
  }

  render() {
    const s = this.span;
    const now = Date.now();
    const pos = this.position();
    const live = pos === null;
    this.label.textContent = live ? "LIVE" : `REPLAY ${clock(pos)}${this.speed > 1 ? ` ${this.speed}×` : ""}`;
    this.label.classList.toggle("notlive", !live);
    const from = s && s.from !== null ? s.from : now;
    const to = Math.max(now, from + 1);
    this.scrub.min = from;
    this.scrub.max = to;
    if (document.activeElement !== this.scrub) this.scrub.value = live ? to : pos;
    this.scrub.disabled = !s || s.from === null;
    // Gaps drawn on the track: dark where nothing was kept.
    const pct = (x) => (((x - from) / (to - from)) * 100).toFixed(2);
    const stops = (s && s.gaps ? s.gaps : []).map(([a, b]) =>
      `#4a90d9 ${pct(a)}%, #222 ${pct(a)}%, #222 ${pct(b)}%, #4a90d9 ${pct(b)}%`);
    this.scrub.style.background = `linear-gradient(to right, ${["#4a90d9 0%", ...stops, "#4a90d9 100%"].join(", ")})`;
    // The marked span up to what is shown (at most 10 minutes, the server's bound), else the
    // 30 s up to it.
    const end = Math.round(pos ?? now);
    const start = this.markMs !== null && this.markMs < end ? Math.max(this.markMs, end - 600000) : end - 30000;
    const clip = this.el.querySelector(".clip");
    clip.href = this.url(`/api/ip-cameras/${encodeURIComponent(this.t.id)}/clip.mp4?from=${start}&to=${end}`);
    clip.download = `${this.t.id}-${new Date(start).toISOString().replace(/[:.]/g, "-")}.mp4`;
  }

  state() {
    return { id: this.t.id, live: this.at === null, at: this.at, shownTs: this.shownTs,
      label: this.label.textContent, span: this.span, stills: !this.still.hidden,
      mark: this.markMs, clip: this.el.querySelector(".clip").href };
  }

  destroy() {
    clearInterval(this.timer);
    clearInterval(this.ticker);
    this.stopStills();
    this.still.remove();
    this.el.remove();
    this.t.el.classList.remove("replaying");
  }
}
