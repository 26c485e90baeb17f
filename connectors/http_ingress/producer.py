"""The ingress's producer: confluent-kafka driven from a thread, deliveries awaited in asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from connectors.http_ingress.limits import MESSAGE_TIMEOUT_MS
from hub.settings import Settings


class AsyncProducer:
    """A confluent-kafka producer for an asyncio server: a thread serves delivery callbacks and
    resolves one future per message, so a request can await its own acknowledgements."""

    def __init__(self, producer: Any, owned: bool) -> None:
        self.producer = producer
        self._owned = owned
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ingress-delivery", daemon=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncProducer:
        from confluent_kafka import Producer

        from hub.pipeline.clients import producer_config

        config = producer_config(
            settings,
            **{
                "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                "allow.auto.create.topics": False,
                "linger.ms": 2,
            },
        )
        return cls(Producer(config), owned=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving callbacks; flush what is queued when the producer is ours."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._owned:
            self.producer.flush(timeout)

    async def send_all(
        self, topic: str, records: Sequence[tuple[bytes, bytes]], timeout: float
    ) -> list[str | None]:
        """Produce every (key, value) and wait for each delivery report; per record, None when
        the broker acknowledged it, else the error text."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[str | None]] = []
        for key, value in records:
            future: asyncio.Future[str | None] = loop.create_future()
            futures.append(future)
            try:
                self.producer.produce(
                    topic, value=value, key=key, on_delivery=_resolver(loop, future)
                )
            except BufferError:
                future.set_result("producer queue full")
            except Exception as exc:  # KafkaException: unknown topic, message too large, ...
                future.set_result(f"{type(exc).__name__}: {exc}")
        if futures:
            await asyncio.wait(futures, timeout=timeout)
        return [f.result() if f.done() else "not acknowledged in time" for f in futures]


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[str | None]) -> Any:
    def on_delivery(err: Any, msg: Any) -> None:
        result = None if err is None else str(err)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, result)

    return on_delivery


def _settle(future: asyncio.Future[str | None], result: str | None) -> None:
    if not future.done():
        future.set_result(result)
