"""An RTSP server for the live tests: GStreamer's (Debian's gir1.2-gst-rtsp-server-1.0), serving
one MP4 file's H.264 track at rtsp://127.0.0.1:PORT/MOUNT in real time, as an IP camera serves
its stream, once: the first client gets the file from its start; when a second connection comes the mount
is taken down, so a client that reconnects finds nothing there (a camera that went away).

Run with the system Python, which has the GObject bindings (python3-gi):
    /usr/bin/python3 tests/rtsp_server.py FILE.mp4 PORT /MOUNT
It prints "ready" once it listens and serves until it is terminated.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    path, port, mount = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # qtdemux (MP4) and rtph264pay are in gstreamer1.0-plugins-good; no re-encoding.
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(f'( filesrc location="{location}" ! qtdemux ! queue '
                       "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(False)
    mounts = server.get_mount_points()
    mounts.add_factory(mount, factory)
    clients = []

    def connected(*_: object) -> None:
        clients.append(1)
        if len(clients) == 2:  # a second connection: the camera has gone
            mounts.remove_factory(mount)

    server.connect("client-connected", connected)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
