"""Serving the page: the listening socket is bound first (a port in use is one clear line
before any long work), then served from a background thread."""

from __future__ import annotations

import errno
import logging
import socket
import threading

from dash import Dash
from werkzeug.serving import BaseWSGIServer, make_server

from evospike.errors import EvoSpikeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050


def check_port(port: object, option: str = "--port") -> int:
    """A TCP port number: 1 to 65535, or 0 for any free port."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise EvoSpikeError(f"{option} must be a port number from 1 to 65535, or 0 for any "
                            f"free port (got {port!r})")
    return port


def _probe(host: str, port: int, option: str) -> None:
    """Bind ``host:port`` as the server will, and let go: werkzeug reports a failed bind on
    stderr and exits, so the reason is found here first and said in one line."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as exc:
        raise EvoSpikeError(f"cannot listen on host {host!r} ({exc})") from None
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's server does
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EvoSpikeError(f"{option} {port}: {host}:{port} is already in use "
                                    f"(another Insight page or program listens there): choose "
                                    f"another {option}") from None
            raise EvoSpikeError(f"cannot listen on {host}:{port} "
                                f"({exc.strerror or exc})") from None


def bind(app: Dash, host: str, port: int, option: str = "--port") -> BaseWSGIServer:
    """A server for ``app`` listening on ``host:port`` (not yet serving)."""
    check_port(port, option)
    # each request would otherwise print a log line, several a second in live mode
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if port:
        _probe(host, port, option)
    try:
        return make_server(host, port, app.server, threaded=True)
    except SystemExit:  # taken in the instant since the probe
        raise EvoSpikeError(f"{option} {port}: cannot listen on {host}:{port}") from None


def url_of(server: BaseWSGIServer) -> str:
    host = server.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.server_port}/"


def serve_in_background(server: BaseWSGIServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="evospike-insight",
                              daemon=True)
    thread.start()
    return thread
