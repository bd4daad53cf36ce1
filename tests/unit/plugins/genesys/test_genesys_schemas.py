from __future__ import annotations

import io
import json

import fastavro
import pytest
from genesys_helpers import FIXTURES, load_fixture

from connector.plugins.genesys import events, schemagen, schemas, topics

EVENT_FIXTURES = sorted(
    p.name
    for p in (FIXTURES / "frames").glob("*.json")
    if events.classify(p.read_bytes()).kind is events.FrameKind.EVENT
)


def _roundtrip(definition: dict, value: dict) -> dict:
    parsed = fastavro.parse_schema(definition, named_schemas={})
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, value)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed)


@pytest.mark.parametrize("name", schemas.schema_names())
def test_every_schema_file_parses_and_every_field_is_optional(name: str) -> None:
    definition = schemas.load_definition(name)
    fastavro.parse_schema(definition, named_schemas={})

    def check(record: dict) -> None:
        for field in record["fields"]:
            if record["name"] == "GapRecord" or (
                record["name"] == "NotificationEnvelope" and field["name"] == "topicName"
            ):
                continue  # written by the connector itself, always present
            assert field["type"][0] == "null" and field["default"] is None, field["name"]
            for branch in field["type"][1:]:
                walk(branch)

    def walk(avro_type: object) -> None:
        if isinstance(avro_type, dict):
            if avro_type["type"] == "record":
                assert any(f["name"] == "unknown_fields" for f in avro_type["fields"])
                check(avro_type)
            elif avro_type["type"] == "array":
                walk(avro_type["items"])
            elif avro_type["type"] == "map":
                walk(avro_type["values"])
            assert avro_type["type"] != "enum"

    if name != "GapRecord":  # written by the connector itself, nothing unknown to keep
        walk(definition)


def test_schemas_cover_every_typed_family() -> None:
    shipped = set(schemas.schema_names())
    for family in topics.FAMILIES:
        assert family.schema in shipped
    assert {"NotificationEnvelope", "GapRecord"} <= shipped


@pytest.mark.parametrize("fixture", EVENT_FIXTURES)
def test_fixture_events_roundtrip_with_unknown_fields_preserved(fixture: str) -> None:
    frame = load_fixture(f"frames/{fixture}")
    record = events.RecordBuilder(topics.Router()).build(frame, 1_714_557_600_000)
    definition = dict(record.value_schema.definition)
    read = _roundtrip(definition, record.value)
    assert read == record.value
    if definition["name"] == "NotificationEnvelope":
        assert json.loads(read["eventBody"]) == frame["eventBody"]
        assert json.loads(read["metadata"]) == frame["metadata"]
    else:
        assert schemas.restore(read, definition) == frame["eventBody"]


def test_unknown_and_misfit_fields_land_in_unknown_fields_at_their_level() -> None:
    frame = load_fixture("frames/queue_conversation.json")
    value = schemas.family_schema("QueueConversation").to_avro(frame["eventBody"])
    assert json.loads(value["unknown_fields"]) == {"somethingGenesysAddedLater": "kept"}
    customer, _acd, agent = value["participants"]
    assert json.loads(customer["unknown_fields"]) == {
        "brandNewParticipantField": {"nested": [1, 2, 3]}
    }
    assert json.loads(customer["calls"][0]["unknown_fields"]) == {"futureCallFlag": True}
    # a value of the wrong type is not coerced and not dropped
    assert agent["wrapupTimeoutMs"] is None
    assert json.loads(agent["unknown_fields"]) == {"wrapupTimeoutMs": "not-a-number"}
    assert agent["calls"][0]["unknown_fields"] is None


def test_a_source_key_named_unknown_fields_is_kept_too() -> None:
    value = schemas.family_schema("UserPresence").to_avro({"unknown_fields": "x", "primary": True})
    assert json.loads(value["unknown_fields"]) == {"unknown_fields": "x"}


def test_detail_schema_is_the_union_of_members_and_numbers_stay_longs() -> None:
    frame = load_fixture("frames/detail_acd_end.json")
    value = schemas.family_schema("ConversationDetailEvent").to_avro(frame["eventBody"])
    assert value["eventTime"] == 1714557550000
    assert value["acdOutcome"] == "ANSWERED"
    assert value["unknown_fields"] is None


def test_free_form_objects_become_json_text() -> None:
    frame = load_fixture("frames/queue_users.json")
    value = schemas.family_schema("QueueMember").to_avro(frame["eventBody"])
    assert json.loads(value["additionalProperties"]) == {"ringNumber": 1}


def test_big_integers_are_kept_as_json() -> None:
    value = schemas.family_schema("ConversationDetailEvent").to_avro({"eventTime": 2**70})
    assert value["eventTime"] is None
    assert json.loads(value["unknown_fields"]) == {"eventTime": 2**70}


def test_non_object_body_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a JSON object"):
        schemas.family_schema("UserPresence").to_avro(["x"])


def test_committed_schemas_match_the_sdk_models() -> None:
    pytest.importorskip("PureCloudPlatformClientV2")
    assert schemagen.main(["--check"]) == 0, (
        "stale schemas: run python -m connector.plugins.genesys.schemagen"
    )
