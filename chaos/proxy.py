"""A TCP proxy in front of the broker that can be cut, so that the broker goes away and returns.

Stopping the embedded broker would lose every topic, because it keeps them in memory. Clients
reach the broker only through this proxy (the broker advertises the proxy's port), so cutting
the proxy looks to them like a broker outage while the broker keeps its data.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 65_536


class BrokerProxy:
    """Forward connections from `listen_port` to `target_port` on 127.0.0.1 until cut."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self._target_port = target_port
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    @property
    def is_up(self) -> bool:
        """Whether the proxy accepts connections."""
        return self._listener is not None

    def restore(self) -> None:
        """Listen again: clients reconnect and find the broker as they left it."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.listen_port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        logger.info("broker proxy up port=%d", self.listen_port)

    def cut(self) -> None:
        """Refuse new connections and close the open ones, as if the broker went away."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            # Closing alone leaves the port listening while the accept thread waits on it.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for connection in connections:
            _close(connection)
        logger.info("broker proxy cut port=%d", self.listen_port)

    def close(self) -> None:
        """Cut for good."""
        self._stopped.set()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._connections += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes."""
        peers = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for side in peers:
                side.setblocking(True)
                selector.register(side, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in selector.select(timeout=1.0):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(_CHUNK_BYTES)
                        if not data:
                            return
                        peers[source].sendall(data)
            except (OSError, ValueError):
                return
            finally:
                _close(client)
                _close(upstream)


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()
