"""A TCP server on 127.0.0.1 that accepts connections and never answers: a hung tracking store."""

from __future__ import annotations

import socket
import threading


class SilentServer:
    """Accepts every connection, reads nothing, answers nothing, until ``close()``."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port = self._socket.getsockname()[1]
        self.connections: list = []
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while self._open:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self._open = False
        self._socket.close()
        for connection in self.connections:
            connection.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
