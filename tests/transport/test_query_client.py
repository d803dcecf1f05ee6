"""QueryClient request shape: TLS only, padded bodies, fresh nonces, guarded query vectors."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from lifeveil.errors import EgressRefusedError, ProtocolError, ReplayError, ShapeError
from lifeveil.transport.client import QueryClient
from lifeveil.transport.frame import WireSpec
from lifeveil.transport.padding import pad_json, padded_length
from lifeveil.transport.protocol import NONCE_HEADER, TIMESTAMP_HEADER


def _client(handler) -> QueryClient:
    client = QueryClient("https://lifeveil.test", "lvu_token", wire=WireSpec(z_dim=4))
    client._http = httpx.Client(
        base_url="https://lifeveil.test",
        transport=httpx.MockTransport(handler),
        headers={"Authorization": "Bearer lvu_token"},
    )
    return client


def test_requests_are_padded_and_carry_fresh_nonces():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"neighbors": [{"device": "c", "seq": 1, "timestamp_us": 2, "score": 0.5}]}
        )

    client = _client(handler)
    hits = client.knn(np.ones(4, np.float32), k=3)
    client.knn(np.full(4, 1.2345678e-7, np.float32), k=3)
    assert hits[0].seq == 1 and hits[0].score == 0.5
    first, second = seen
    assert len(first.content) == len(second.content) == 1024
    assert json.loads(first.content) == {"z": [1.0] * 4, "k": 3, "device": None}
    assert first.headers[NONCE_HEADER] != second.headers[NONCE_HEADER]
    assert len(first.headers[TIMESTAMP_HEADER]) == len(second.headers[TIMESTAMP_HEADER])


def test_query_vectors_pass_the_egress_guard():
    client = _client(lambda r: httpx.Response(500))
    with pytest.raises(EgressRefusedError, match="shape"):
        client.knn(np.ones(5, np.float32))
    with pytest.raises(EgressRefusedError, match="NaN"):
        client.classify("h", np.full((2, 4), np.nan, np.float32))


@pytest.mark.parametrize(
    ("status", "error"), [(409, ReplayError), (422, ShapeError), (500, ProtocolError)]
)
def test_server_errors_become_typed_errors(status, error):
    body = {"error": "x", "message": "what went wrong"}
    client = _client(lambda r: httpx.Response(status, json=body))
    with pytest.raises(error, match=f"HTTP {status}: what went wrong"):
        client.heads()


def test_plain_http_is_refused():
    with pytest.raises(ProtocolError, match="https"):
        QueryClient("http://127.0.0.1:8443", "lvu_token")


def test_padding_buckets():
    assert padded_length(1) == 1024 and padded_length(1025) == 2048
    assert json.loads(pad_json(b'{"a": 1}')) == {"a": 1}
