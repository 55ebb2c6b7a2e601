// camwall wall page: a camera's own H.264/H.265 over WebRTC, played in the tile's <video>. One
// RTCPeerConnection per tile, opened with WHEP (`POST /api/ip-cameras/{id}/whep`, the SDP offer
// in, the answer and the session's Location out) and ended with `DELETE` on that Location. For
// browsers without WebCodecs (plain http on a LAN address, older Safari), whose pages would
// otherwise make the server decode and re-encode every camera as JPEG. A tile whose sound is
// heard asks for audio too (an audio section in its offer): one media stream, which the
// browser plays in sync, unmuted by the page.

// The server is ICE-lite with host candidates in its answer: no STUN or TURN servers, and the
// offer goes out at once, without waiting for this side's candidates.
const CONNECT_MS = 15000; // from the offer to the connection being up
const FIRST_FRAME_MS = 15000; // from the offer to the first picture on screen
const DISCONNECTED_MS = 5000; // a connection lost this long is given up
const DELETE_WAIT_MS = 2000; // the longest a closing connection waits for its DELETE's answer

// Whether this browser plays WebRTC at all.
export function webrtcAvailable() {
  return typeof RTCPeerConnection !== "undefined";
}

// A connection with its offer made ahead, while the page still asks for its cameras: the
// first session takes it and skips the browser's offer time. Closed if nobody takes it soon.
let prepared = null;
const PREPARED_MS = 10000;
export function prepareOffer() {
  if (prepared || !webrtcAvailable()) return;
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  const mine = { pc, offer: pc.createOffer().then((o) => pc.setLocalDescription(o)) };
  prepared = mine;
  setTimeout(() => { if (prepared === mine) { prepared = null; pc.close(); } }, PREPARED_MS);
}

// Why a session failed: `status` and `code` from the WHEP answer (409 `no_video`, 503
// `webrtc_unavailable`, ...), or status 0 with a code of this page's (`failed`, `timeout`).
export class WhepError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

// One tile's session. `onFrame(meta)` for each picture shown (requestVideoFrameCallback's
// metadata, or {} where that is missing); `onFail(WhepError)` once, when the session cannot
// start or is lost; the owner then closes it and shows the tile otherwise. A session may start
// before its tile exists (`video` null, no callbacks) and be handed to it with `adopt`: the
// page opens them while its WebSocket still connects.
export class WebRtcTile {
  constructor(video, camera, token, { onFrame, onFail, audio = false } = {}) {
    this.video = video;
    this.camera = camera;
    this.audio = audio;
    this.token = token;
    this.onFrame = onFrame;
    this.onFail = onFail;
    this.pc = null;
    this.stream = null;
    this.location = null;
    this.closed = false;
    this.frames = 0;
    this.timers = [];
    this.lostTimer = null;
    this.frameCallback = null;
    this.rtt = 0; // seconds, from the connection's stats
    // When (ms since navigation) the offer went out, the answer came, the connection was up.
    this.times = { offer: null, answer: null, connected: null };
  }

  headers(extra) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  async start() {
    try {
      await this.open();
    } catch (e) {
      this.fail(e instanceof WhepError ? e : new WhepError(0, "failed", String(e && e.message || e)));
    }
  }

  async open() {
    // The offer made ahead asks for video only.
    const ahead = this.audio ? null : prepared;
    if (ahead) prepared = null;
    const pc = ahead ? ahead.pc : new RTCPeerConnection();
    this.pc = pc;
    if (!ahead) pc.addTransceiver("video", { direction: "recvonly" });
    if (this.audio) pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (e) => {
      if (this.closed) return;
      this.stream = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      if (this.video) this.play();
    };
    pc.onconnectionstatechange = () => this.onState(pc.connectionState);
    this.timers.push(setTimeout(() => {
      if (pc.connectionState !== "connected") this.fail(new WhepError(0, "timeout", "WebRTC did not connect"));
    }, CONNECT_MS));
    this.timers.push(setTimeout(() => {
      if (!this.frames) this.fail(new WhepError(0, "timeout", "no picture over WebRTC"));
    }, FIRST_FRAME_MS));
    if (ahead) {
      await ahead.offer;
    } else {
      await pc.setLocalDescription(await pc.createOffer());
    }
    this.times.offer = performance.now();
    const r = await fetch(`/api/ip-cameras/${encodeURIComponent(this.camera)}/whep`, {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/sdp" }),
      body: pc.localDescription.sdp,
    });
    const text = await r.text();
    this.times.answer = performance.now();
    if (r.status !== 201) {
      let code = "failed", message = text;
      try { ({ error: code, message } = JSON.parse(text)); } catch (_) { /* not JSON */ }
      throw new WhepError(r.status, code, message);
    }
    const where = r.headers.get("Location");
    this.location = where ? new URL(where, location.href).href : null;
    // Closed while the offer was out: the session just made goes at once.
    if (this.closed) return this.remove();
    await pc.setRemoteDescription({ type: "answer", sdp: text });
  }

  // Hands a session started without a tile to its tile's video element.
  adopt(video, { onFrame, onFail }) {
    this.video = video;
    this.onFrame = onFrame;
    this.onFail = onFail;
    if (this.stream) this.play();
  }

  play() {
    this.video.srcObject = this.stream;
    this.video.play().catch(() => { /* autoplay of a muted video: retried by the browser */ });
    this.watchFrames();
  }

  onState(state) {
    if (this.closed) return;
    if (state === "failed" || state === "closed") {
      this.fail(new WhepError(0, "failed", `WebRTC connection ${state}`));
    } else if (state === "disconnected") {
      // Often back within a second or two (a missed consent check): given a few.
      if (!this.lostTimer) {
        this.lostTimer = setTimeout(() => this.fail(new WhepError(0, "failed", "WebRTC connection lost")), DISCONNECTED_MS);
      }
    } else if (state === "connected") {
      if (this.times.connected === null) this.times.connected = performance.now();
      clearTimeout(this.lostTimer);
      this.lostTimer = null;
    }
  }

  // Counts the pictures shown: every frame presented where requestVideoFrameCallback exists,
  // else the decoder's frame count read twice a second.
  watchFrames() {
    const v = this.video;
    if (typeof v.requestVideoFrameCallback === "function") {
      const each = (_now, meta) => {
        if (this.closed) return;
        this.frames++;
        if (this.onFrame) this.onFrame(meta);
        this.frameCallback = v.requestVideoFrameCallback(each);
      };
      this.frameCallback = v.requestVideoFrameCallback(each);
      return;
    }
    let seen = 0;
    this.timers.push(setInterval(() => {
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
      const total = q ? q.totalVideoFrames : (v.readyState >= 2 ? seen + 1 : 0);
      for (; seen < total; seen++) {
        this.frames++;
        if (this.onFrame) this.onFrame({});
      }
    }, 500));
  }

  // The connection's round trip (seconds), refreshed from its stats; 0 until known.
  async refreshRtt() {
    if (!this.pc || this.closed) return this.rtt;
    try {
      const stats = await this.pc.getStats();
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && typeof s.currentRoundTripTime === "number") {
          this.rtt = s.currentRoundTripTime;
        }
      });
    } catch (_) {
      // A connection closing meanwhile: the last value stays.
    }
    return this.rtt;
  }

  fail(err) {
    if (this.closed) return;
    this.close();
    if (this.onFail) this.onFail(err);
  }

  // Ends the session: the element emptied at once, the server told (DELETE, also from a page
  // being left), then the connection closed (once the server answered, within a bound, so that
  // the session ends by its DELETE rather than by the peer going away).
  close() {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    clearTimeout(this.lostTimer);
    if (this.video) {
      if (this.frameCallback !== null && typeof this.video.cancelVideoFrameCallback === "function") {
        this.video.cancelVideoFrameCallback(this.frameCallback);
      }
      this.video.srcObject = null;
    }
    const pc = this.pc;
    if (!pc) return;
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    const answered = new Promise((resolve) => setTimeout(resolve, DELETE_WAIT_MS));
    Promise.race([this.remove(), answered]).finally(() => pc.close());
  }

  // DELETE on the session's Location, when it has one; resolves when answered (or failed).
  remove() {
    if (!this.location) return Promise.resolve();
    const url = this.location;
    this.location = null;
    // keepalive: the request outlives a page being closed or reloaded.
    return fetch(url, { method: "DELETE", headers: this.headers({}), keepalive: true }).catch(() => {});
  }
}
