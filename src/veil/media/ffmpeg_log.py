"""Catches the damage FFmpeg only logs: a decoder that conceals a broken frame says so nowhere else.

FFmpeg's H.264 decoder conceals damaged macroblocks and carries on; the only trace is an error on
its log. veil fails such a file instead, because a concealed frame may show a face the detector
never saw whole, so the reader watches the log of its own decoder while it decodes.
"""

from __future__ import annotations

import logging
import threading

import av
import av.logging


class DecoderErrors(logging.Handler):
    """Collects FFmpeg's error messages for the decoders being watched.

    FFmpeg's H.264 decoder conceals a damaged frame and only logs an error (even with
    err_detect=explode), so logs are the one place the damage shows. Frame-threaded decoders log
    from their own threads, so messages are matched by decoder name, not by thread.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._lock = threading.Lock()
        self._watching: dict[int, tuple[str, list[str]]] = {}

    def watch(self, key: int, codec: str, sink: list[str]) -> None:
        """Collect the errors FFmpeg logs for this decoder (by codec name) into `sink`."""
        _install()
        with self._lock:
            self._watching[key] = ("libav." + codec, sink)

    def unwatch(self, key: int) -> None:
        with self._lock:
            self._watching.pop(key, None)

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            for name, sink in self._watching.values():
                if record.name == name:
                    sink.append(record.getMessage().strip())


decoder_errors = DecoderErrors()
_errors_installed = False
_errors_lock = threading.Lock()


def _install() -> None:
    """Route FFmpeg errors (not warnings) to Python logging once, with our collector attached."""
    global _errors_installed
    with _errors_lock:
        if _errors_installed:
            return
        level = av.logging.get_level()
        if level is None or level < av.logging.ERROR:
            av.logging.set_level(av.logging.ERROR)
        logging.getLogger("libav").addHandler(decoder_errors)
        _errors_installed = True
