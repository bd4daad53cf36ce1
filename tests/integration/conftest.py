"""Fixtures of the runtime integration tests; broker and registry come from tests/conftest."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient
from kafka_helpers import unique


@pytest.fixture
def names(admin: AdminClient) -> Iterator[Callable[[str], str]]:
    """Unique topic/connector names for one test; the topics are deleted afterwards."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    if made:
        admin.delete_topics(made)  # best effort, not awaited (names that are no topic: ignored)
