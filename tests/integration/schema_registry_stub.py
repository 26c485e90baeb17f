"""A minimal Confluent Schema Registry REST stand-in for cross-process framing tests.

Confluent's registry is not on Maven Central, so tests serve the three calls the
``confluent_kafka.schema_registry`` client makes here (register, look up by id, subject
versions) over real HTTP; the hub's worker and the test both use the real client against it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Registry:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def register(self, subject: str, schema: str) -> int:
        with self.lock:
            schema_id = self.ids.setdefault(schema, len(self.ids) + 1)
            self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id


class _Handler(BaseHTTPRequestHandler):
    registry: _Registry

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        path = self.path.split("?")[0].strip("/").split("/")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if len(path) == 3 and path[0] == "subjects" and path[2] == "versions":
            self._reply(200, {"id": self.registry.register(path[1], body["schema"])})
        elif len(path) == 2 and path[0] == "subjects":  # lookup: is this schema registered?
            schema_id = self.registry.ids.get(body["schema"])
            if schema_id is None:
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._reply(
                    200,
                    {"subject": path[1], "id": schema_id, "version": 1, "schema": body["schema"]},
                )
        else:
            self._reply(404, {"error_code": 404, "message": "not found"})

    def do_GET(self) -> None:
        path = self.path.split("?")[0].strip("/").split("/")
        if len(path) == 3 and path[:2] == ["schemas", "ids"]:
            schema = self.registry.schemas.get(int(path[2]))
            if schema is None:
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._reply(200, {"schema": schema})
        else:
            self._reply(404, {"error_code": 404, "message": "not found"})

    def log_message(self, format: str, *args: object) -> None:
        pass


class SchemaRegistryStub:
    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {"registry": _Registry()})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
