"""Schemathesis hooks for the fuzzing stage of scripts/test.

POST /api/v1/webhooks/pos is authenticated by an HMAC of its body, not by the API key: each
generated request is signed with the webhook source that scripts/test created, so the fuzzer
reaches the handler's validation instead of stopping at 401.
"""

import hashlib
import hmac
import json
import os
import time

import schemathesis

SOURCE = os.environ.get("LOY_FUZZ_WEBHOOK_SOURCE", "")
SECRET = os.environ.get("LOY_FUZZ_WEBHOOK_SECRET", "")


def _bytes_sent(body):
    """The bytes the requests transport sends for a JSON body (see requests' `json=`)."""
    if isinstance(body, bytes):
        return body
    if body is None:
        return b"null"
    try:
        return json.dumps(body, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        return None


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not SECRET or case.path != "/api/v1/webhooks/pos":
        return
    body = _bytes_sent(case.body)
    if body is None:
        return
    t = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    if case.headers is None:
        case.headers = {}
    case.headers["X-Loy-Source"] = SOURCE
    case.headers["X-Loy-Signature"] = f"t={t},v1={mac}"
