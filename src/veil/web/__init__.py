"""The local review app: check, fix and export redactions in a browser, served on 127.0.0.1 only."""

from .app import create_app
from .library import Library
from .server import ReviewServer

__all__ = ["Library", "ReviewServer", "create_app"]
