"""Event contracts: enums, pydantic models, Avro schemas, codec and dead letters."""
