"""``GenesysSimulator``: runs the server on its own event-loop thread, for tests and the CLI."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from connector.simulator import control, rest
from connector.simulator.config import SimulatorConfig
from connector.simulator.faults import Faults
from connector.simulator.http import Request, Response, error_body
from connector.simulator.hub import Hub
from connector.simulator.ledger import Ledger
from connector.simulator.server import Connection

T = TypeVar("T")


class _LoopProxy:
    """Calls methods of an object on the simulator's loop thread and returns their results."""

    def __init__(self, sim: GenesysSimulator, target: object) -> None:
        self._sim, self._target = sim, target

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = getattr(self._target, name)
        return lambda *args, **kwargs: self._sim.call(fn, *args, **kwargs)


class GenesysSimulator:
    """A local Genesys Cloud (OAuth + notifications REST + streaming WebSocket).

    Owns one daemon thread running an asyncio loop; every piece of state lives on it. Public
    methods may be called from any thread; they marshal onto the loop and wait for the result.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._hub: Hub | None = None
        self._faults: Faults | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> GenesysSimulator:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._thread = threading.Thread(target=self._run, name="genesys-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        if not self._ready.is_set():
            raise RuntimeError("simulator did not start within 10 s")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> GenesysSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # surface bind errors to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        hub = Hub(self.config)
        self._hub, self._faults = hub, Faults(hub)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(hub, self._handle), self.config.host, self.config.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        hub.registry.ws_base = self.ws_url
        hub.start()

    async def _shutdown(self) -> None:
        assert self._hub is not None and self._server is not None
        await self._hub.stop()
        self._server.close()

    def _handle(self, req: Request) -> Response:
        assert self._hub is not None and self._faults is not None
        path = req.path
        if path == "/oauth/token":
            return rest.oauth_token(self._hub, req)
        if path.startswith("/api/v2/"):
            return rest.api(self._hub, req)
        if path == control.PREFIX or path.startswith(control.PREFIX + "/"):
            return control.handle(self._hub, self._faults, req)
        return error_body(404, "not.found", f"No resource at {path}")

    # -- addresses -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: serves ``/oauth/token`` and ``/api/v2/...``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket base; a channel's ``connectUri`` is ``{ws_url}/channels/{channelId}``."""
        return f"ws://{self.config.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}{control.PREFIX}"

    # -- thread-safe access --------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the loop thread and return its result (or raise its exception)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("simulator is not running")

        async def run() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(30)

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise RuntimeError("simulator is not started")
        return self._hub

    @property
    def ledger(self) -> Ledger:
        """Delivered events; readable from any thread (``entries``, ``summary``, ``len``)."""
        return self.hub.ledger

    @property
    def faults(self) -> Any:
        """``Faults`` methods, executed on the loop thread (e.g. ``sim.faults.drop(cid)``)."""
        assert self._faults is not None
        return _LoopProxy(self, self._faults)

    def set_rate(self, rate: float | None = None, mode: str | None = None) -> None:
        self.call(self.hub.set_rate, rate, mode)

    def status(self) -> dict[str, Any]:
        return self.call(control.status, self.hub)

    def entities(self) -> dict[str, Any]:
        return self.call(control.entities, self.hub)

    @property
    def queue_ids(self) -> list[str]:
        return [q["id"] for q in self.entities()["queues"]]

    @property
    def user_ids(self) -> list[str]:
        return [u["id"] for u in self.entities()["users"]]

    def channels(self) -> list[dict[str, Any]]:
        return self.call(control.channels, self.hub)

    def wait_connected(self, channel_id: str, timeout_s: float = 5.0) -> bool:
        """Poll until ``channel_id`` has an open socket (True) or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ch in self.channels():
                if ch["id"] == channel_id and ch["connected"]:
                    return True
            time.sleep(0.005)
        return False
