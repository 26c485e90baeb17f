"""Delivery of VNG Notificaties to subscribers (issue 19): the Kafka and HTTP runtime.

``topics`` (the delivery topics and their creation), ``store`` (subscriptions, delivery log,
dead letters, status: what ``hub subscriptions`` reads and writes), ``sender`` (one guarded
POST with aiohttp), ``runtime`` (``hub deliver``: one consumer group and one queue per
subscription). The pure rules are in :mod:`hub.delivery`. Imports ``hub``; never ``tools`` or
``hubctl``.
"""
