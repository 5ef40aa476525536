"""A client of the Jaeger query API (``/api/services``, ``/api/traces``): a real Jaeger, or our sink's subset of
it. Waiting for a trace goes through ``cristack.harness.assertions.wait_for_trace`` on a
``cristack.harness.backends.JaegerBackend``, which reads Jaeger with this client."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from cristack.harness.sink.jaeger import spans_from_jaeger
from cristack.harness.sink.store import Span


@dataclass
class JaegerQuery:
    base_url: str  # e.g. http://127.0.0.1:16686
    timeout: float = 5.0

    def _get(self, path: str, **params: str | int) -> dict:
        url = self.base_url.rstrip("/") + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            return json.load(resp)

    def services(self) -> list[str]:
        return list(self._get("/api/services").get("data") or [])

    def traces(self, service: str, operation: str = "", limit: int = 100, lookback: str = "1h") -> list[list[Span]]:
        params: dict[str, str | int] = {"service": service, "limit": limit, "lookback": lookback}
        if operation:
            params["operation"] = operation
        try:
            data = self._get("/api/traces", **params).get("data") or []
        except urllib.error.HTTPError as err:
            if err.code in (400, 404):  # Jaeger answers so for a service it has not seen yet
                return []
            raise
        return [spans_from_jaeger(t) for t in data]

    def trace(self, trace_id: str) -> list[Span]:
        try:
            data = self._get(f"/api/traces/{trace_id}").get("data") or []
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return []
            raise
        return spans_from_jaeger(data[0]) if data else []

    def ready(self) -> bool:
        try:
            self._get("/api/services")
            return True
        except (OSError, ValueError):
            return False
