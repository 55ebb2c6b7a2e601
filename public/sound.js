// camwall wall page: one camera's sound. Audio is off until the user asks (a speaker button on
// each tile whose camera has audio this browser can play); one camera is heard at a time.
// Over the WebSocket the camera's own frames are decoded with WebCodecs' AudioDecoder and
// scheduled in an AudioContext on their pts, which is the playout clock: the heard tile's
// video frames are held to the same clock (audio is the master, LEAD_S behind live), so
// picture and sound stay together. Over WebRTC the browser plays and synchronizes both itself.

// How far behind the newest audio the clock plays: room for the network's jitter and the
// decoder, small enough that a door opening is heard when it is seen.
const LEAD_S = 0.15;
// Audio that would play later than this ahead of the clock restarts the clock (a camera
// whose clock jumped); audio already late does too (the link stalled).
const AHEAD_MAX_S = 1.0;
// Seconds of the heard sound kept (mono, the first channel) for the page's own checks.
const KEEP_S = 1;

function base64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// Audio codec families this browser's AudioDecoder takes (the WebSocket's `audio` list).
export async function audioFamilies() {
  if (!window.isSecureContext || typeof AudioDecoder === "undefined") return [];
  const probes = {
    aac: { codec: "mp4a.40.2", sampleRate: 48000, numberOfChannels: 1 },
    opus: { codec: "opus", sampleRate: 48000, numberOfChannels: 2 },
    pcmu: { codec: "ulaw", sampleRate: 8000, numberOfChannels: 1 },
    pcma: { codec: "alaw", sampleRate: 8000, numberOfChannels: 1 },
  };
  const out = [];
  for (const [family, config] of Object.entries(probes)) {
    try {
      if ((await AudioDecoder.isConfigSupported(config)).supported) out.push(family);
    } catch (_) {
      // An engine that throws on a codec it does not know does not support it.
    }
  }
  return out;
}

// The page's one player: made on the user's click (browsers start audio only on a gesture).
export class AudioPlayer {
  constructor() {
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    this.decoder = null;
    this.camera = null;
    // Seconds to add to a frame's pts (in seconds) for its AudioContext time; null until the
    // first frame sets the clock.
    this.offset = null;
    this.decoded = 0;
    this.restarts = 0;
    this.ring = new Float32Array(0);
    this.ringAt = 0;
    this.ringFilled = 0;
    this.keepRate = 0;
  }

  resume() {
    return this.ctx.resume().catch(() => { /* resumed on the next gesture */ });
  }

  // An `audio_config` of camera `camera`: a decoder for its track; the clock starts anew.
  configure(camera, cfg) {
    this.stop();
    this.camera = camera;
    const decoder = new AudioDecoder({
      output: (d) => this.play(d),
      error: (e) => console.warn("camwall: audio", camera, String(e && e.message || e)),
    });
    const config = { codec: cfg.codec, sampleRate: cfg.sample_rate, numberOfChannels: cfg.channels };
    if (cfg.description) config.description = base64ToBytes(cfg.description);
    try {
      decoder.configure(config);
      this.decoder = decoder;
    } catch (e) {
      console.warn("camwall: audio", camera, String(e && e.message || e));
    }
  }

  // One audio frame of `camera` (header already parsed).
  decode(camera, header, data) {
    if (camera !== this.camera || !this.decoder || this.decoder.state !== "configured") return;
    try {
      this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: header.pts, data }));
    } catch (_) {
      // A frame the decoder refuses: the next one goes on.
    }
  }

  // Schedules decoded audio at its place on the clock.
  play(d) {
    try {
      const n = d.numberOfFrames, channels = d.numberOfChannels;
      const buf = this.ctx.createBuffer(channels, n, d.sampleRate);
      for (let c = 0; c < channels; c++) {
        const plane = new Float32Array(n);
        d.copyTo(plane, { planeIndex: c, format: "f32-planar" });
        buf.copyToChannel(plane, c);
        if (c === 0) this.remember(plane, d.sampleRate);
      }
      const now = this.ctx.currentTime;
      let at = this.offset === null ? -1 : d.timestamp / 1e6 + this.offset;
      if (at < now || at > now + AHEAD_MAX_S) {
        if (this.offset !== null) this.restarts++;
        this.offset = now + LEAD_S - d.timestamp / 1e6;
        at = now + LEAD_S;
      }
      const src = this.ctx.createBufferSource();
      src.buffer = buf;
      src.connect(this.ctx.destination);
      src.start(at);
      this.decoded++;
    } finally {
      d.close();
    }
  }

  // The last KEEP_S of the first channel, in a ring written in place (no copy of the whole
  // second per frame).
  remember(plane, rate) {
    const size = Math.round(rate * KEEP_S);
    if (this.keepRate !== rate || this.ring.length !== size) {
      this.ring = new Float32Array(size);
      this.ringAt = 0;
      this.ringFilled = 0;
      this.keepRate = rate;
    }
    for (let i = 0; i < plane.length; i++) {
      this.ring[this.ringAt] = plane[i];
      this.ringAt = (this.ringAt + 1) % size;
    }
    this.ringFilled = Math.min(size, this.ringFilled + plane.length);
  }

  // The kept samples, oldest first.
  kept() {
    const n = this.ringFilled, size = this.ring.length;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.ring[(this.ringAt - n + i + size) % size];
    return out;
  }

  // Milliseconds until camera time `pts` (µs) is heard, for the heard tile's video; null
  // while there is no clock (no audio yet, or the context is not running).
  delayMs(pts) {
    if (this.offset === null || this.ctx.state !== "running") return null;
    const out = (this.ctx.outputLatency || 0) + (this.ctx.baseLatency || 0);
    return (pts / 1e6 + this.offset + out - this.ctx.currentTime) * 1000;
  }

  // Stops the current camera's sound (its decoder; what is scheduled plays out).
  stop() {
    if (this.decoder && this.decoder.state !== "closed") {
      try { this.decoder.close(); } catch (_) { /* already closed */ }
    }
    this.decoder = null;
    this.camera = null;
    this.offset = null;
  }
}
