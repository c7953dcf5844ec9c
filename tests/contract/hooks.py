"""Schemathesis hooks for Warren's contract run (loaded by tests/contract/run).

A plugin upload is sent as raw bytes: a component as `application/wasm`, a
manifest as `application/toml`. Schemathesis has no serializer for either
media type, so the generated body goes on the wire as it is.
"""

import schemathesis


@schemathesis.serializer("application/wasm", "application/toml")
def raw_bytes(_context, value):
    if isinstance(value, bytes):
        return value
    data = getattr(value, "data", None)
    if isinstance(data, bytes):
        return data
    return str(value).encode("utf-8")
