"""Benchmarks of the Genesys connector against the machine's ceilings: ``python -m bench``.

What runs (see ``BENCHMARKS.md`` for the method and the recorded results):

- ``e2e``: the simulator floods as fast as it can; ``connector run`` (a separate process) writes
  Avro through the real registry with the idempotent ``acks=all`` producer to the devstack
  Kafka. Throughput is counted from Kafka itself (the high watermarks of the target topics),
  so only acked records count; every record is then read back and its CorrelationId checked
  against the simulator's ledger (no loss, no duplicate).
- ``rates``: the same at fixed offered rates; latency is the broker's LogAppendTime of each
  record minus the simulator's ``sent_ns`` for that event (ledger, by CorrelationId).
- ``cost``: CPU seconds per 1,000 events and peak RSS of the connector process (from /proc) at
  10 and 1,000 subscribed topics, with 1 and 4 tasks.
- ``backpressure``: Kafka made slower than the source (a broker-side produce quota on the
  connector's client id): the connector's RSS must stay bounded.
- ``ceilings``: confluent-kafka producing the same encoded bytes, websocket-client receiving
  the same frames, fastavro encoding the same events.

Modules: :mod:`bench.procstat` (/proc sampling), :mod:`bench.sim` (simulator subprocess),
:mod:`bench.kafka` (topics, watermarks, read-back), :mod:`bench.connector` (deployment and
process), :mod:`bench.scenarios`, :mod:`bench.ceilings`, :mod:`bench.report`, :mod:`bench.cli`.
"""
