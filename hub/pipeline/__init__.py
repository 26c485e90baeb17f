"""Kafka wiring of the hub: topics, clients, the ingest stage, the Faust app and its state.

May import the domain packages, ``hub.settings``/``logs``/``metrics``/``health``, ``hub.agents``
and the Kafka libraries (confluent-kafka, aiokafka, Faust, rocksdict); never ``connectors``,
``tools`` or ``hubctl``.
"""
