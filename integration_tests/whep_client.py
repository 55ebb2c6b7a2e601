#!/usr/bin/env python3
"""A third-party WHEP player for the end-to-end tests: aiortc (PyPI) receives one camera over
WebRTC and decodes it. Prints one JSON line per event on stdout:
  {"event": "answer", "status": 201, "location": ...}  or  {"event": "refused", "status": N, "body": ...}
  {"event": "frame", "n": N, "width": W, "height": H, "pts": P, "ms": time since the POST}
  {"event": "done", "frames": N, "width": W, "height": H, "deltas": [pts steps],
   "audio_frames": N, "audio_rate": R, "audio_channels": C, "audio_samples": N}
With --kind av the offer asks for audio too; --audio-out FILE keeps what was heard as raw
16-bit samples (interleaved), --audio-seconds S waits for that much of it.
With --vanish the peer stops without DELETE (a viewer that disappears); else it DELETEs.
"""
import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription


def say(**kw):
    print(json.dumps(kw), flush=True)


def http(method, url, body=None, token=None, content_type=None):
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url", help="the WHEP endpoint, http://127.0.0.1:PORT/api/ip-cameras/ID/whep")
    ap.add_argument("--token")
    ap.add_argument("--frames", type=int, default=50, help="stop after this many decoded frames")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--vanish", action="store_true", help="stop without DELETE")
    ap.add_argument("--offer", help="send this file as the offer instead of aiortc's")
    ap.add_argument("--kind", default="video", choices=["video", "audio", "av"],
                    help="what the offer asks for (audio: an offer without video; av: both)")
    ap.add_argument("--audio-out", help="write the audio heard here as raw s16")
    ap.add_argument("--audio-seconds", type=float, default=0,
                    help="with --kind av, also wait for this much audio")
    ap.add_argument("--print-offer", action="store_true", help="print the offer and stop")
    args = ap.parse_args()

    pc = RTCPeerConnection()
    if args.kind in ("video", "av"):
        pc.addTransceiver("video", direction="recvonly")
    if args.kind in ("audio", "av"):
        pc.addTransceiver("audio", direction="recvonly")
    frames = []
    heard = {"frames": 0, "rate": 0, "channels": 0, "samples": 0}
    pcm = bytearray()
    video_done = asyncio.Event()
    audio_done = asyncio.Event()
    if args.audio_seconds <= 0:
        audio_done.set()
    t0 = time.monotonic()

    async def read_video(track):
        while len(frames) < args.frames:
            try:
                f = await track.recv()
            except Exception:
                break
            frames.append(f)
            say(event="frame", n=len(frames), width=f.width, height=f.height, pts=f.pts,
                ms=round((time.monotonic() - t0) * 1000, 1))
        video_done.set()

    async def read_audio(track):
        while True:
            try:
                f = await track.recv()
            except Exception:
                break
            channels = len(f.layout.channels)
            heard.update(frames=heard["frames"] + 1, rate=f.sample_rate, channels=channels,
                         samples=heard["samples"] + f.samples)
            if heard["frames"] == 1:
                say(event="audio", rate=f.sample_rate, channels=channels, format=f.format.name,
                    ms=round((time.monotonic() - t0) * 1000, 1))
            pcm.extend(bytes(f.planes[0])[:f.samples * channels * 2])
            if heard["samples"] >= args.audio_seconds * f.sample_rate:
                audio_done.set()

    @pc.on("track")
    def on_track(track):
        if track.kind == "audio":
            asyncio.ensure_future(read_audio(track))
        else:
            asyncio.ensure_future(read_video(track))

    async def both():
        await video_done.wait()
        await audio_done.wait()
    done = asyncio.ensure_future(both())

    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    if args.print_offer:
        say(event="offer", sdp=offer)
        await pc.close()
        return
    if args.offer:
        offer = open(args.offer).read()
    t0 = time.monotonic()
    loop = asyncio.get_running_loop()
    status, headers, body = await loop.run_in_executor(
        None, lambda: http("POST", args.url, offer.encode(), args.token, "application/sdp"))
    if status != 201:
        say(event="refused", status=status, body=body, content_type=headers.get("content-type"))
        await pc.close()
        return
    location = headers.get("location")
    say(event="answer", status=status, location=location, content_type=headers.get("content-type"))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    try:
        await asyncio.wait_for(done, args.timeout)
    except asyncio.TimeoutError:
        pass
    deltas = [b.pts - a.pts for a, b in zip(frames, frames[1:])]
    last = frames[-1] if frames else None
    if args.audio_out:
        with open(args.audio_out, "wb") as out:
            out.write(pcm)
    say(event="done", frames=len(frames), width=last.width if last else 0,
        height=last.height if last else 0, deltas=deltas, audio_frames=heard["frames"],
        audio_rate=heard["rate"], audio_channels=heard["channels"],
        audio_samples=heard["samples"])
    if args.vanish:
        # Gone without a word: no DELETE, no DTLS close, no more STUN or RTCP.
        import os
        os._exit(0)
    base = args.url.split("/api/")[0]
    status, _, _ = await loop.run_in_executor(
        None, lambda: http("DELETE", base + location, None, args.token))
    say(event="deleted", status=status)
    await pc.close()


asyncio.run(main())
