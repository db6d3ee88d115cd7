"""A fake SumUp OAuth 2.0 server and REST API for local runs and tests.

Run it: ``python -m fakes.sumup --port 8765`` (see ``--help``), or in-process::

    from fakes.sumup import FakeSumUp

    with FakeSumUp() as fake:
        settings.SUMUP_BASE_URL, settings.SUMUP_API_URL = fake.base_url, fake.api_url
        fake.configure(rotation="always", reject_reuse=True)
        fake.add_fault("token", 429, retry_after=2)
        ...
        assert fake.state.token_calls("artist@example.com", "refresh_token") == 1
"""

from fakes.sumup.models import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_MERCHANT_CODE,
    DEFAULT_MERCHANT_NAME,
    DEFAULT_REDIRECT_URI,
    DEFAULT_SCOPES,
    DEFAULT_USER_EMAIL,
    ENDPOINTS,
    Config,
    Fault,
    Rotation,
    token_hash,
)
from fakes.sumup.server import FakeSumUp
from fakes.sumup.state import FakeState

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_MERCHANT_CODE",
    "DEFAULT_MERCHANT_NAME",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_SCOPES",
    "DEFAULT_USER_EMAIL",
    "ENDPOINTS",
    "Config",
    "FakeState",
    "FakeSumUp",
    "Fault",
    "Rotation",
    "token_hash",
]
