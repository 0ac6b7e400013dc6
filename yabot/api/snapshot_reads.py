"""State reads answered at the ASGI layer: ``GET /user/{id}/state`` of a user whose session
has published a fresh snapshot, with a token this process has already verified.

`SnapshotStateReads` is `BufferedWsgi`'s ``shortcut``. It answers only the plain case, with
the very pieces the Falcon app's middleware and resource use — the same token cache
(`TokenVerifier.remembered`), route policy, rate-limit counts, HTTP metrics, request log and
correlation id (`yabot.api.request_context`), and rendered bodies (`RenderedViews`) — so
its answer is the app's, byte for byte (tests/api/test_snapshot_reads.py holds the two side
by side). Anything else it leaves to the app, unread and uncounted: another route or method,
a query string or a body, a token not verified yet (or expired, or without the scope), a
user owned by another process, no fresh snapshot, or a rate limit that would refuse — the
app then answers as it always does (401, 403, 429, or the ask on a request thread).

Why: measured in the server, Falcon's WSGI handling, the environ and the six middlewares cost
about 35 µs of CPU a request here, against about 55 for the whole answer without them
(README "Serving"). The reply is read when the request is whole (a GET has no body), so
whatever was answered before it was sent is in it (`actors.Snapshot`).

Only with the rate limit in this process (no ``REDIS_URL``): the shared limiter is a Redis
round trip, which must not run on the event loop.
"""

from __future__ import annotations

import re
import time
from typing import Any

from actors import KeyedActors
from yabot.api.asgi import Answer, Scope
from yabot.api.auth import TokenVerifier, bearer_token, token_scopes
from yabot.api.metrics import HttpMetrics
from yabot.api.ratelimit import RateLimit
from yabot.api.request_context import REQUEST_ID_HEADER, RequestLog, begin_request
from yabot.api.resources import MAX_USER_ID, STATE_ROUTE, RenderedViews, UserStateResource
from yabot.cluster.routing import AskRouter
from yabot.sessions.messages import GET_STATE

_PATH = re.compile(r"/user/([1-9][0-9]{0,15})/state")
_SCOPE = UserStateResource.policy.scopes["GET"]
_STATUS = "200 OK"
_CONTENT_TYPE = (b"content-type", b"application/json")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
#: Headers that frame a body: the app's `BodyLimits` decides about those requests.
_BODY_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


class SnapshotStateReads:
    """Answers a plain state read from a session's snapshot, or says None (the app answers)."""

    def __init__(self, sessions: KeyedActors[int, Any], router: AskRouter | None,
                 verifier: TokenVerifier, rate_limit: RateLimit | None, metrics: HttpMetrics,
                 rendered: RenderedViews) -> None:
        self._sessions = sessions
        self._router = router
        self._verifier = verifier
        self._rate_limit = rate_limit
        self._metrics = metrics
        self._rendered = rendered
        self._request_log = RequestLog()

    def __call__(self, scope: Scope) -> Answer | None:
        if scope["method"] != "GET" or scope["query_string"]:
            return None
        match = _PATH.fullmatch(scope["path"])
        if match is None:
            return None
        authorization = request_id = None
        for raw_name, value in scope["headers"]:
            name = raw_name.lower()
            if name == b"authorization":
                if authorization is not None:
                    return None  # repeated: the app reads them joined, and refuses
                authorization = value
            elif name == _REQUEST_ID:
                if request_id is not None:
                    return None
                request_id = value
            elif name in _BODY_FRAMING:
                return None
        token = bearer_token(authorization.decode("latin-1") if authorization else None)
        claims = self._verifier.remembered(token) if token is not None else None
        if claims is None or _SCOPE not in token_scopes(claims):
            return None
        user_id = int(match[1])
        router = self._router
        if user_id > MAX_USER_ID or (router is not None and not router.owns(user_id)):
            return None  # refused (400), or forwarded to the owner: the app's to do
        state = self._sessions.published(user_id, GET_STATE)
        if state is None:
            return None
        started = time.perf_counter()
        if self._rate_limit is not None and self._rate_limit.take(claims["sub"]) is not None:
            return None  # counted nothing: the app takes again and answers 429
        self._metrics.started()
        correlation_id = begin_request(request_id.decode("latin-1") if request_id else None)
        body = self._rendered.state_body(state)
        self._metrics.finished("GET", STATE_ROUTE, 200, time.perf_counter() - started)
        self._request_log.line("GET", scope["path"], _STATUS, started)
        return 200, [_CONTENT_TYPE, (_REQUEST_ID, correlation_id.encode("latin-1"))], body
