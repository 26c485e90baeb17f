"""Event contracts: enums, pydantic models, Avro schemas, codec and dead letters.

Pure domain: imports the standard library, pydantic, fastavro, orjson and ``hub.settings``; no
Kafka or Faust client, no ``hub.pipeline``/``hub.agents`` (one allowance: the codec's Schema
Registry adapter lazily uses ``confluent_kafka.schema_registry``, an HTTP client).
"""
