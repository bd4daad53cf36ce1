"""A Kafka Connect-style source connector framework for Python."""

__version__ = "0.1.0"
