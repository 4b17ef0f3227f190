"""The ASGI app and the uvicorn server around it (foreground for the CLI, background thread for
tests and benchmarks)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Self

import uvicorn
from fastapi import FastAPI

from incydr_sandbox import errors
from incydr_sandbox.config import SandboxConfig
from incydr_sandbox.faults import FaultMiddleware
from incydr_sandbox.routes import (
    actors,
    admin,
    alert_rules,
    alerts,
    knowbe4,
    oauth,
    sessions,
    sinks,
    slack,
    user_events,
    watchlists,
)
from incydr_sandbox.state import SandboxState


def build_app(config: SandboxConfig | SandboxState | None = None) -> FastAPI:
    """The sandbox as an ASGI app. Pass a config (or an existing state to share it)."""
    state = config if isinstance(config, SandboxState) else SandboxState(config or SandboxConfig())
    app = FastAPI(title="incydr-sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    errors.install(app)
    for module in (oauth, sessions, alerts, alert_rules, actors, knowbe4, admin, sinks, slack, watchlists,
                   user_events):
        app.include_router(module.router)
    app.add_middleware(FaultMiddleware, state=state)
    return app


# uvicorn logs to stderr only (its default sends access lines to stdout, which belongs to the
# single "serving ..." line).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_started is not None:
            self.on_started()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def make_server(state: SandboxState, *, access_log: bool = False, log_level: str = "warning",
                on_started: Callable[[], None] | None = None) -> uvicorn.Server:
    config = uvicorn.Config(build_app(state), access_log=access_log, log_level=log_level, log_config=LOG_CONFIG,
                            timeout_keep_alive=30, lifespan="off")
    server = _Server(config, on_started)
    state.sinks.start_smtp(state.config.smtp_host, state.config.smtp_port)

    def find_connection(client: tuple):
        # uvicorn keeps its live HTTP protocol objects (``.client``, ``.transport``) in server_state.
        return next((c for c in list(server.server_state.connections) if getattr(c, "client", None) == client),
                    None)

    state.find_connection = find_connection
    return server


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_forever(state: SandboxState, host: str, port: int, *, access_log: bool = False,
                  log_level: str = "warning", on_started: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until interrupted; ``on_started(base_url)`` once connections are accepted."""
    sock = bind(host, port)
    server = make_server(state, access_log=access_log, log_level=log_level,
                         on_started=(lambda: on_started(url_of(sock))) if on_started else None)
    asyncio.run(server.serve(sockets=[sock]))


class RunningSandbox:
    """A sandbox served from a background thread of this process::

        with RunningSandbox(SandboxConfig(...)) as sandbox:
            requests.get(sandbox.base_url + "/_sandbox/health")
    """

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = SandboxState(config or SandboxConfig())
        self._sock = bind(host, port)
        self.base_url = url_of(self._sock)
        self._started = threading.Event()
        self._server = make_server(self.state, on_started=self._started.set)
        self._thread = threading.Thread(target=self._run, name="incydr-sandbox", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        finally:
            self._started.set()  # also when it failed to start: start() must not wait in vain

    def start(self, timeout: float = 30.0) -> Self:
        self._thread.start()
        if not self._started.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError("incydr-sandbox did not start (see the log on stderr)")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_in_thread(config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """Start a sandbox in a background thread; returns it running (``.base_url``, ``.state``, ``.stop()``)."""
    return RunningSandbox(config, host, port).start()
