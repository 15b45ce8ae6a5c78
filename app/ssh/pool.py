"""One connection per node, shared by every container a refresh or a provisioning job touches."""
from __future__ import annotations

from .client import NodeConnection
from .errors import SSHUnreachable
from .settings import SSHSettings


class SSHPool:
    """Hands out one NodeConnection per node and closes them all at the end.

    A node that could not be reached is not retried within the same pool, so a batch over
    twenty containers of a dead node waits for one connect timeout, not twenty.
    """

    def __init__(self, settings: SSHSettings) -> None:
        self.settings = settings
        self._connections: dict[str, NodeConnection] = {}
        self._unreachable: dict[str, SSHUnreachable] = {}

    def __enter__(self) -> SSHPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def node(self, name: str) -> NodeConnection:
        """The (connected) connection to node ``name``."""
        if name in self._unreachable:
            raise self._unreachable[name]
        connection = self._connections.get(name)
        if connection is None:
            connection = self._connections[name] = NodeConnection(name, self.settings)
        try:
            connection.connect()
        except SSHUnreachable as exc:
            self._unreachable[name] = exc
            raise
        return connection

    def close(self) -> None:
        """Close every connection."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        self._unreachable.clear()
