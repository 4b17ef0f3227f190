"""A small loopback TCP proxy the tests control: put it between a client and a server, then cut.

    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"
        proxy.cut_after(64)   # forward 64 more client bytes, then cut every connection mid-stream
        proxy.cut()           # or: cut now; new connections are refused until restore()
        proxy.restore()

Bounded: one accept thread plus one pump thread per connection (at most ``max_connections``),
every wait has a timeout, and ``close()`` stops and joins them all. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Self


class TcpProxy:
    def __init__(self, target: tuple[str, int], *, max_connections: int = 16) -> None:
        self.target = target
        self.max_connections = max_connections
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._refusing = False
        self._budget: int | None = None  # client -> server bytes still forwarded before a cut
        self.cuts = 0  # connections cut
        self.refused = 0  # connections refused while cut
        self.forwarded = 0  # client -> server bytes
        self._accepter = threading.Thread(target=self._accept_loop, name="tcp-proxy-accept", daemon=True)
        self._accepter.start()

    # --- control --------------------------------------------------------------------------------
    def cut(self) -> None:
        """Cut every live connection (both sides see the stream end) and refuse new ones."""
        with self._lock:
            self._refusing = True
            self._budget = None
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            self.cuts += 1
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut_after(self, nbytes: int) -> None:
        """Forward ``nbytes`` more bytes from clients to the server, then ``cut()`` mid-stream."""
        with self._lock:
            self._budget = nbytes

    def restore(self) -> None:
        """Accept (and forward) new connections again."""
        with self._lock:
            self._refusing = False
            self._budget = None

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._accepter.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the threads ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refuse = self._refusing or len(self._pairs) >= self.max_connections
            if refuse:
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            thread = threading.Thread(target=self._pump, args=(client, upstream), name="tcp-proxy-pump", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            try:
                while not self._stop.is_set():
                    for key, _ in sel.select(timeout=0.1):
                        source, sink = key.fileobj, key.data
                        data = source.recv(65536)
                        if not data:
                            return
                        cut_now = False
                        if source is client:
                            with self._lock:
                                if self._budget is not None:
                                    if len(data) >= self._budget:
                                        data, cut_now = data[: self._budget], True
                                    else:
                                        self._budget -= len(data)
                            self.forwarded += len(data)
                        sink.sendall(data)
                        if cut_now:
                            self.cut()
                            return
            except OSError:
                return
            finally:
                with self._lock:
                    if (client, upstream) in self._pairs:
                        self._pairs.remove((client, upstream))
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
