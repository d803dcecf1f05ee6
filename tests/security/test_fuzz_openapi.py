"""Schema-driven fuzzing of every HTTP route (schemathesis against the app's OpenAPI spec).

Each operation gets up to ``MAX_EXAMPLES`` generated requests (about 1,000 in all), sent with a
valid token of each kind in turn and fresh replay headers, so that the generated bodies reach
the handlers instead of stopping at authentication. No request may produce a 5xx.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lifeveil.server.app import create_app  # noqa: E402
from server.server_helpers import auth, make_world  # noqa: E402

pytestmark = [pytest.mark.security, pytest.mark.slow]
MAX_EXAMPLES = 80

_DIR = Path(tempfile.mkdtemp(prefix="lifeveil-fuzz-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
_WORLD = make_world(_DIR / "srv", rate_limit_per_s=0.0)
_TOKENS = [_WORLD.admin_token, _WORLD.tokens["a_user"], _WORLD.tokens["a_dev"]]
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", create_app(_WORLD.config, _WORLD.store))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_route_answers_5xx(case) -> None:
    for token in _TOKENS:
        response = case.call(headers={**(case.headers or {}), **auth(token)})
        assert response.status_code < 500, (case.method, case.path, response.text[:200])
