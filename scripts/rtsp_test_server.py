#!/usr/bin/python3
"""A pull-mode RTSP test camera on 127.0.0.1, from GStreamer's RTSP server (Debian packages).

Prints "PORT <n>" on stdout once it is listening (port 0 picks a free one), then serves until
killed. Used by the integration tests and the benchmarks; run it with Debian's /usr/bin/python3,
which has the `gi` bindings.

  rtsp_test_server.py --port 0 --pattern smpte100 --size 640x360 --fps 15
  rtsp_test_server.py --port 0 --clip clip.h264        (a pre-encoded H.264 stream, looped)
  rtsp_test_server.py --port 0 --pattern smpte --switch-after 5   (still, then scrolling)
  rtsp_test_server.py --port 0 --pattern smpte --speed 4 --size 1280x720 --fps 25 --bitrate 4000
  rtsp_test_server.py --port 0 --audio aac --audio-freq 440   (H.264 plus a sine in AAC)
  rtsp_test_server.py --port 0 --colors 8    (solid red, green, blue, 8 s each, in a loop)
"""
import argparse
import faulthandler
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    # A crash in GStreamer's threads then leaves its stack on stderr, which the tests show.
    faulthandler.enable()
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--mounts", type=int, default=1,
                    help="serve this many cameras: PATH0 .. PATHn-1 (PATH itself when 1)")
    ap.add_argument("--pattern", default="smpte100")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--clip", help="raw H.264 Annex B file served in a loop instead of a live encode")
    ap.add_argument("--codec", choices=["h264", "h265", "vp8"], default="h264",
                    help="codec of the live encode (h265: x265, for HEVC cameras; vp8: one "
                    "the RTSP reader does not take and FFmpeg's does)")
    ap.add_argument("--speed", type=int, default=0,
                    help="scroll the pattern this many pixels a frame (moving content)")
    ap.add_argument("--switch-after", type=float,
                    help="after this many seconds of serving, scroll at --switch-speed")
    ap.add_argument("--switch-speed", type=int, default=4)
    ap.add_argument("--bitrate", type=int,
                    help="target bitrate of the live encode in kbit/s (default: the encoder's, "
                    "2048 for x264 and x265); a rich pattern such as a scrolling smpte fills it")
    ap.add_argument("--profile", choices=["high", "main", "baseline"],
                    help="H.264 profile the encoder must use (default: x264's choice, Constrained Baseline at ultrafast)")
    ap.add_argument("--user", help="require this user (with --password) over RTSP basic auth")
    ap.add_argument("--password")
    ap.add_argument("--colors", type=float,
                    help="a solid picture cycling red, green, blue, each this many seconds")
    ap.add_argument("--audio", choices=["aac", "pcmu", "opus"],
                    help="an audio track beside the video: a sine in AAC (48 kHz), G.711 mu-law "
                         "(8 kHz) or Opus (48 kHz)")
    ap.add_argument("--audio-freq", type=int, default=440, help="the sine's frequency in Hz")
    args = ap.parse_args()

    Gst.init(None)
    w, h = args.size.split("x")
    rate = f" bitrate={args.bitrate}" if args.bitrate else ""
    # x264 signals the profile its tools need: ultrafast turns CABAC and 8x8 transforms off,
    # which is Constrained Baseline whatever the caps say.
    tools = {"high": " cabac=true dct8x8=true", "main": " cabac=true"}.get(args.profile or "", "")
    rate += tools
    if args.clip:
        launch = (
            f"( multifilesrc location={args.clip} loop=true ! h264parse ! "
            f"video/x-h264,framerate={args.fps}/1 ! identity sync=true ! "
            f"h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
        )
    else:
        pattern = "solid-color foreground-color=0xffff0000" if args.colors else args.pattern
        launch = (
            f"( videotestsrc name=src is-live=true pattern={pattern} "
            f"horizontal-speed={args.speed} ! "
            f"video/x-raw,width={w},height={h},framerate={args.fps}/1 ! "
            + (
                f"vp8enc deadline=1 keyframe-max-dist={args.fps} ! rtpvp8pay name=pay0 pt=96 )"
                if args.codec == "vp8"
                else f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps}{rate} ! "
                f"h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96 )"
                if args.codec == "h265"
                else f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps}{rate} ! "
                + (f"video/x-h264,profile={args.profile} ! " if args.profile else "")
                + f"h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
            )
        )
    if args.audio:
        # Rate, encoder, and samples per buffer: G.711 in 20 ms packets, as cameras send it.
        enc = {
            "aac": ("48000", "avenc_aac ! aacparse ! rtpmp4gpay name=pay1 pt=97", 1024),
            "pcmu": ("8000", "mulawenc ! rtppcmupay name=pay1 pt=0", 160),
            "opus": ("48000", "opusenc frame-size=20 ! rtpopuspay name=pay1 pt=111", 960),
        }[args.audio]
        audio = (
            f" audiotestsrc is-live=true wave=sine freq={args.audio_freq} "
            f"samplesperbuffer={enc[2]} ! audioconvert ! "
            f"audioresample ! audio/x-raw,rate={enc[0]},channels=1 ! {enc[1]}"
        )
        launch = launch.rstrip()[:-1].rstrip() + audio + " )"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role_from_structure(
            Gst.Structure.new_from_string("user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")
        )
        factory.set_permissions(perms)
    if args.switch_after is not None:
        def configured(_factory, media):
            src = media.get_element().get_by_name("src")
            if src is not None:
                def switch():
                    src.set_property("horizontal-speed", args.switch_speed)
                    return False
                GLib.timeout_add(int(args.switch_after * 1000), switch)
        factory.connect("media-configure", configured)
    if args.colors:
        def cycle(_factory, media):
            src = media.get_element().get_by_name("src")
            if src is not None:
                colors = iter([0xff00ff00, 0xff0000ff, 0xffff0000] * 1000000)
                def step():
                    src.set_property("foreground-color", next(colors))
                    return True
                GLib.timeout_add(int(args.colors * 1000), step)
        factory.connect("media-configure", cycle)
    mounts = server.get_mount_points()
    if args.mounts == 1:
        mounts.add_factory(args.path, factory)
    else:
        for i in range(args.mounts):
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(launch)
            f.set_shared(True)
            mounts.add_factory(f"{args.path}{i}", f)
    if server.attach(None) == 0:
        print("cannot listen", file=sys.stderr)
        sys.exit(1)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
