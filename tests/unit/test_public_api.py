"""The SPI is the contract plugins compile against: pin its surface and its documentation."""

from __future__ import annotations

import doctest
import inspect

import connector.api
import connector.api.record
import connector.testing

EXPECTED = {
    "AvroSchema",
    "ConfigError",
    "ConfigIssue",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorTransactionBoundaries",
    "ConversionError",
    "DeliveryError",
    "ExactlyOnceSupport",
    "Header",
    "MalformedInput",
    "OffsetReader",
    "OffsetStoreError",
    "PluginSpec",
    "Polled",
    "RetriableError",
    "SourceConnector",
    "SourceOffset",
    "SourcePartition",
    "SourceRecord",
    "SourceTask",
    "TaskConfig",
    "TaskContext",
    "TaskFailedError",
    "TransactionContext",
}


def test_public_api_is_pinned() -> None:
    assert set(connector.api.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(connector.api, name), name


def test_every_public_class_and_method_is_documented() -> None:
    missing = []
    for name in connector.api.__all__:
        obj = getattr(connector.api, name)
        if not inspect.isclass(obj):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        for attr, member in vars(obj).items():
            if attr.startswith("_") or not callable(member):
                continue
            if not inspect.getdoc(member):
                missing.append(f"{name}.{attr}")
    assert missing == []


def test_doctests_in_the_spi_and_test_kit_pass() -> None:
    for module in (connector.api.record, connector.testing):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
