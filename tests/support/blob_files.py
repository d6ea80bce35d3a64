"""What a server with the local blob store keeps on disk, for tests that check no bytes are lost or left behind."""

from __future__ import annotations

from .server import ServerHandle


def blob_names(server: ServerHandle) -> set[str]:
    """Names of the files under the server's local blob directory (<data dir>/files/<shard>/<name>), temp files
    included; empty when the directory does not exist yet."""
    root = server.data_dir / "files"
    return {p.name for p in root.glob("*/*")} if root.exists() else set()
