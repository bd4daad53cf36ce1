"""The ``websocket`` connector: splits the configured URLs over tasks."""

from __future__ import annotations

from pydantic import BaseModel

from connector.api import ConnectorContext, SourceConnector, TaskConfig
from connector.plugins.websocket.spec import SPEC, WebSocketSourceConfig
from connector.plugins.websocket.task import WebSocketSourceTask


class WebSocketSourceConnector(SourceConnector):
    """Reads any JSON-over-WebSocket feed; one source partition per URL.

    Each task gets a share of the URLs (``{"urls": [...]}``), dealt round robin so that tasks
    differ by at most one URL.
    """

    spec = SPEC
    task_class = WebSocketSourceTask

    def __init__(self) -> None:
        self._config: WebSocketSourceConfig | None = None

    def start(self, ctx: ConnectorContext) -> None:
        self._config = _as_config(ctx.config)

    def task_configs(self, max_tasks: int) -> list[TaskConfig]:
        if self._config is None:
            raise RuntimeError("cannot split the websocket connector: start() was not called")
        return split_urls(self._config.all_urls, max_tasks)


def split_urls(urls: list[str], max_tasks: int) -> list[TaskConfig]:
    """Deal ``urls`` round robin over at most ``max_tasks`` tasks (never an empty task).

    >>> split_urls(["ws://a", "ws://b", "ws://c"], 2)
    [{'urls': ['ws://a', 'ws://c']}, {'urls': ['ws://b']}]
    """
    if max_tasks < 1:
        raise ValueError(f"max_tasks must be at least 1, got {max_tasks}")
    count = min(max_tasks, len(urls))
    shares: list[list[str]] = [[] for _ in range(count)]
    for index, url in enumerate(urls):
        shares[index % count].append(url)
    return [{"urls": share} for share in shares]


def _as_config(config: BaseModel) -> WebSocketSourceConfig:
    if not isinstance(config, WebSocketSourceConfig):
        raise TypeError(f"expected a WebSocketSourceConfig, got {type(config).__name__}")
    return config
