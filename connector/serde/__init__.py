"""Converters: Avro through a schema registry (Confluent wire format), JSON, string, bytes."""
