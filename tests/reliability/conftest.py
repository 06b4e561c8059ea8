"""The config API's fixtures (the app on the real broker and database, API keys), shared here.

Fixtures of a conftest.py reach only the tests beneath it: re-exporting these lets the
tenancy matrix and the API fuzzer run the same app and keys as tests/config/.
"""

from __future__ import annotations

from tests.config.conftest import acme, api, broker_admin, globex, sessions

__all__ = ["acme", "api", "broker_admin", "globex", "sessions"]
