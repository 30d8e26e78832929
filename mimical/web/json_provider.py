"""The app's JSON reader: strict UTF-8, so a lone surrogate never gets past the request.

Python's `json` turns `"\\ud800"` into a str that no UTF-8 encoder accepts: the request
would fail later (Redis, the model server, a log line) with a 500. orjson refuses such
input while parsing, so every component treats it as any malformed body (a 4xx), at
once. Writing stays Flask's default (orjson would change the
answers' key order and spacing).
"""

from __future__ import annotations

import orjson
from flask.json.provider import DefaultJSONProvider


class StrictJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs):
        """Parse like `json.loads`, refusing invalid UTF-8 and lone surrogates
        (`orjson.JSONDecodeError` is a `ValueError`, which Flask turns into a 400)."""
        return orjson.loads(s)
