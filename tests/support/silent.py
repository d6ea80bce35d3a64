"""TEST DOUBLE: a TCP endpoint that accepts connections and never answers (a service that hangs)."""

from __future__ import annotations

import socket
import threading


class SilentEndpoint:
    """Listens on 127.0.0.1, accepts every connection and never sends a byte; `close()` refuses further ones."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        """An OpenAI-style base URL (``http://127.0.0.1:<port>/v1``) pointing at this endpoint."""
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        """Close the listening socket and every accepted connection."""
        self.closed = True
        for c in [*self.conns, self.sock]:
            c.close()
