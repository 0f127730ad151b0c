"""`serve`: run the studio on a socket until Ctrl-C — the library behind
`music-transformer studio`."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..checkpoint import bundled_models, resolve_model_dir
from .generation import Models

DEFAULT_PORT = 8765


def default_pieces_dir() -> Path:
    """$MUSIC_TRANSFORMER_STUDIO, else ~/music-transformer-studio (pieces are work to keep,
    not a cache)."""
    return Path(
        os.environ.get("MUSIC_TRANSFORMER_STUDIO") or Path.home() / "music-transformer-studio"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def offered_models(model: str | None) -> Models:
    """Every bundled model, plus `model` when it is a directory; `model` is the default.
    Raises CheckpointError (one line) when it is neither."""
    if model is None or model in bundled_models():
        return Models(default=model)
    directory = resolve_model_dir(model)
    return Models({str(model): directory}, default=str(model))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port). OSError (one line) when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({e.strerror or e}): pass another --port"
        ) from None
    sock.listen(64)
    return sock


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    model: str | None = None,
    pieces_dir: str | Path | None = None,
    open_browser: bool = True,
    abandon_after: float = 30.0,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the studio on host:port until interrupted (Ctrl-C, SIGTERM), then stop the
    running job and return.

    Args:
        host: address to bind; loopback unless asked (another address gets a warning).
        port: TCP port; 0 picks a free one (the printed URL says which).
        model: default model (bundled name or checkpoint/run directory).
        pieces_dir: where pieces are kept (default `default_pieces_dir()`).
        open_browser: open the page in the default browser once listening.
        abandon_after: seconds after which a job nobody watches is stopped.
        echo: where the URL and warnings go.
    """
    import uvicorn

    from .app import LOOPBACK_HOSTS, build_app
    from .service import Studio

    models = offered_models(model)
    pieces_dir = Path(pieces_dir) if pieces_dir else default_pieces_dir()
    studio = Studio(pieces_dir, models, abandon_after)
    loopback = is_loopback(host)
    sock = bind(host, port)
    shown = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{shown}/"
    if not loopback:
        echo(f"warning: listening on {host}: anyone who can reach this machine can use the "
             "studio, its models and its pieces")  # fmt: skip
    echo(f"music-transformer studio: {url}  (pieces in {pieces_dir}; Ctrl-C stops)")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    app = build_app(studio, hosts=[*LOOPBACK_HOSTS, host] if loopback else None)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    signals: list[int] = []  # the signals that stopped the server

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            signals.append(sig)
            super().handle_exit(sig, frame)

    server = Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        studio.jobs.stop()
        sock.close()
    # uvicorn re-raises a captured Ctrl-C once it has shut down, but under asyncio.run that
    # only cancels the serving task, which may already be past its last await: then run()
    # returns as if nothing happened. Ctrl-C ends every command the same way (exit 130).
    if signal.SIGINT in signals:
        raise KeyboardInterrupt
