"""Downstream delivery of VNG Notificaties (issue 19): the pure part.

Subscriptions (:mod:`.subscription`), the Notificatie message built from an alert record
(:mod:`.notificatie`), the checks a callback URL and its addresses must pass
(:mod:`.destinations`), the retry and dead-letter policy and the delivery log entry
(:mod:`.policy`), the sealing of Authorization values (:mod:`.secrets`) and the settings
(:mod:`.config`).

Import rule (``tests/unit/test_layering.py``): no Kafka client, no HTTP client, no
``hub.pipeline``/``hub.agents``; the runtime that consumes the alert topics and POSTs lives in
``connectors/delivery``.
"""
