"""Kafka wiring of the hub: topics, clients, the ingest stage, the Faust app and its state."""
