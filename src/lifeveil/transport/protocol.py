"""Names shared by device and server: URL paths, headers and WebSocket close codes."""

from __future__ import annotations

#: WebSocket endpoint for the constant-rate uplink (``wss://HOST:PORT/v1/uplink``).
UPLINK_PATH = "/v1/uplink"
#: HTTPS alternative: POST a batch of whole frames as ``application/octet-stream``.
FRAMES_PATH = "/v1/frames"
#: Query endpoints (POST JSON); only answers come back, never stored z.
KNN_PATH = "/v1/query/knn"
CLASSIFY_PATH = "/v1/query/classify"
TIMELINE_PATH = "/v1/query/timeline"
HEADS_PATH = "/v1/heads"
DEVICES_PATH = "/v1/devices"
INFO_PATH = "/v1/info"
HEALTH_PATH = "/v1/health"

#: ``"VERSION;Z_DIM;DTYPE"`` sent by the device in the WebSocket handshake.
WIRE_HEADER = "X-LifeVeil-Wire"
#: Fresh random value (16-128 chars of ``[A-Za-z0-9_-]``) on every JSON POST.
NONCE_HEADER = "X-LifeVeil-Nonce"
#: Client clock at send time, Unix seconds; must be within the server's replay window.
TIMESTAMP_HEADER = "X-LifeVeil-Timestamp"

#: Close codes the server uses on the uplink WebSocket. These are not retried by the
#: device: resending the same thing cannot fix them.
CLOSE_PROTOCOL_ERROR = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
FATAL_CLOSE_CODES = frozenset({CLOSE_PROTOCOL_ERROR, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN})
