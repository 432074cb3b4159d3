"""A TCP proxy in front of the test server, so a test can make the server "unreachable"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio


class Proxy:
    """Forwards ``127.0.0.1:port`` to the server until `cut` closes everything."""

    def __init__(self, nursery: trio.Nursery, listener: trio.SocketListener, target: str) -> None:
        self._nursery = nursery
        self._listener = listener
        self._target = target
        self._scope = trio.CancelScope()
        self.port: int = listener.socket.getsockname()[1]

    def url(self, dsn: str) -> str:
        """``dsn`` with its host and port replaced by the proxy's."""
        parts = urlsplit(dsn)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        new = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
        return parts._replace(netloc=new).geturl()

    def cut(self) -> None:
        """Drop every forwarded connection and refuse new ones (the server "goes away")."""
        self._scope.cancel()

    async def serve(self) -> None:
        with self._scope:
            async with self._listener:
                await trio.serve_listeners(self._forward, [self._listener])

    async def _forward(self, client: trio.SocketStream) -> None:
        parts = urlsplit(self._target)
        server = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 5432)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(_pipe, client, server, nursery.cancel_scope)
            nursery.start_soon(_pipe, server, client, nursery.cancel_scope)


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except trio.BrokenResourceError:
        pass
    done.cancel()


@asynccontextmanager
async def open_proxy(target: str) -> AsyncIterator[Proxy]:
    """A running proxy to the server of the DSN ``target``; stopped on exit."""
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        proxy = Proxy(nursery, listener, target)
        nursery.start_soon(proxy.serve)
        yield proxy
        proxy.cut()
