"""Subject name strategies: plain functions ``(topic, record_name, is_key) -> subject``.

Names accepted in config are Confluent's short and fully qualified class names.
"""

from __future__ import annotations

from collections.abc import Callable

SubjectNameStrategy = Callable[[str, str, bool], str]


def topic_name_strategy(topic: str, record_name: str, is_key: bool) -> str:
    return f"{topic}-{'key' if is_key else 'value'}"


def record_name_strategy(topic: str, record_name: str, is_key: bool) -> str:
    return record_name


def topic_record_name_strategy(topic: str, record_name: str, is_key: bool) -> str:
    return f"{topic}-{record_name}"


_PACKAGE = "io.confluent.kafka.serializers.subject."
STRATEGIES: dict[str, SubjectNameStrategy] = {}
for _name, _fn in (
    ("TopicNameStrategy", topic_name_strategy),
    ("RecordNameStrategy", record_name_strategy),
    ("TopicRecordNameStrategy", topic_record_name_strategy),
):
    STRATEGIES[_name] = _fn
    STRATEGIES[_PACKAGE + _name] = _fn


def strategy_named(name: str) -> SubjectNameStrategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(k for k in STRATEGIES if "." not in k)
        raise ValueError(f"unknown subject name strategy '{name}' (expected {known})") from None
