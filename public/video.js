// camwall wall page: a camera's own H.264/H.265 decoded in the browser with WebCodecs, drawn on
// the tile's canvas. Used per tile when the browser can decode the camera's codec in a secure
// context; the tile falls back to JPEG (and tells the server) when the decoder fails. A tile
// whose sound is heard holds each frame until the sound's clock reaches it (`clock`): lip sync.

// A frame is held for the sound's clock at most this long, and at most this many at once (the
// oldest is shown early rather than the queue growing).
const HOLD_MAX_MS = 1000;
const HOLD_MAX_FRAMES = 60;

// Codec families this browser's VideoDecoder takes, probed once with typical codec strings.
export async function supportedFamilies() {
  if (!window.isSecureContext || typeof VideoDecoder === "undefined") return [];
  const probes = { h264: "avc1.640028", h265: "hvc1.1.6.L120.90" };
  const out = [];
  for (const [family, codec] of Object.entries(probes)) {
    try {
      const r = await VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true });
      if (r.supported) out.push(family);
    } catch (_) {
      // An engine that throws on a codec it does not know simply does not support it.
    }
  }
  return out;
}

// Whether this browser decodes one camera's exact stream (its codec string from `video_config`).
export async function supportsConfig(cfg) {
  if (typeof VideoDecoder === "undefined") return false;
  try {
    const r = await VideoDecoder.isConfigSupported(decoderConfig(cfg));
    return !!r.supported;
  } catch (_) {
    return false;
  }
}

function base64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function decoderConfig(cfg) {
  const c = {
    codec: cfg.codec,
    codedWidth: cfg.width || undefined,
    codedHeight: cfg.height || undefined,
    optimizeForLatency: true,
  };
  if (cfg.format === "avcc" && cfg.description) c.description = base64ToBytes(cfg.description);
  return c;
}

// One tile's decoder. `onError(message)` is called once if decoding fails; the owner then
// switches the tile to JPEG. Every VideoFrame is closed after drawing (no growth over hours).
export class VideoTile {
  constructor(canvas, onError) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onError = onError;
    this.decoder = null;
    this.config = null;
    this.needKey = true;
    this.failed = false;
    this.pending = new Map(); // chunk timestamp (pts) -> {seq, ts}
    this.onDrawn = null; // (seq, ts) after a frame is painted
    // With sound: pts (µs) -> ms until it is heard, or null (then frames show at once).
    this.clock = null;
    this.held = [];
    // How far each painted frame was from the sound's clock (ms, + = early), the last few.
    this.skews = [];
  }

  configure(cfg) {
    this.close();
    this.config = cfg;
    this.needKey = true;
    this.decoder = new VideoDecoder({
      output: (frame) => this.draw(frame),
      error: (e) => this.fail(String(e && e.message || e)),
    });
    try {
      this.decoder.configure(decoderConfig(cfg));
    } catch (e) {
      this.fail(String(e && e.message || e));
    }
  }

  // One access unit from a binary frame message (header already parsed).
  decode(header, data) {
    if (!this.decoder || this.failed || this.decoder.state !== "configured") return;
    if (this.needKey && !header.key) return;
    this.needKey = false;
    // The chunk's timestamp is the camera's own clock (pts, microseconds), as WebCodecs
    // expects; it also finds the drawn frame's seq for the ack. A server without pts: seq.
    const timestamp = Number.isFinite(header.pts) ? header.pts : header.seq;
    this.pending.set(timestamp, { seq: header.seq, ts: header.ts });
    if (this.pending.size > 256) this.pending.delete(this.pending.keys().next().value);
    try {
      this.decoder.decode(new EncodedVideoChunk({
        type: header.key ? "key" : "delta",
        timestamp,
        data,
      }));
    } catch (e) {
      this.fail(String(e && e.message || e));
    }
  }

  // A decoded frame: shown now, or when the sound's clock reaches it.
  draw(frame) {
    const wait = this.clock ? this.clock(frame.timestamp) : null;
    if (wait === null || wait <= 2 || wait > HOLD_MAX_MS) return this.paint(frame);
    if (this.held.length >= HOLD_MAX_FRAMES) this.paint(this.held.shift());
    this.held.push(frame);
    setTimeout(() => this.release(frame), wait);
  }

  // A held frame's time has come: it is shown (any held before it were shown already).
  release(frame) {
    const i = this.held.indexOf(frame);
    if (i < 0) return;
    for (const f of this.held.splice(0, i + 1)) this.paint(f);
  }

  paint(frame) {
    if (this.clock) {
      const skew = this.clock(frame.timestamp);
      if (skew !== null) {
        this.skews.push(skew);
        if (this.skews.length > 200) this.skews.shift();
      }
    }
    try {
      const w = frame.displayWidth, h = frame.displayHeight;
      if (this.canvas.width !== w || this.canvas.height !== h) {
        this.canvas.width = w;
        this.canvas.height = h;
      }
      this.ctx.drawImage(frame, 0, 0, w, h);
      const p = this.pending.get(frame.timestamp);
      this.pending.delete(frame.timestamp);
      if (p && this.onDrawn) this.onDrawn(p.seq, p.ts);
    } finally {
      frame.close();
    }
  }

  fail(message) {
    if (this.failed) return;
    this.failed = true;
    this.close();
    if (this.onError) this.onError(message);
  }

  close() {
    if (this.decoder && this.decoder.state !== "closed") {
      try { this.decoder.close(); } catch (_) { /* already closed */ }
    }
    this.decoder = null;
    this.pending.clear();
    for (const f of this.held) f.close();
    this.held = [];
  }
}
