// camwall wall page: a camera's own H.264/H.265 decoded in the browser with WebCodecs, drawn on
// the tile's canvas. Used per tile when the browser can decode the camera's codec in a secure
// context; the tile falls back to JPEG (and tells the server) when the decoder fails.

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

  draw(frame) {
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
  }
}
