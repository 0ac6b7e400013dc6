"""State reads answered on the event loop: `GET /user/{id}/state` of a user whose session has
a fresh snapshot needs no request thread.

`StateReadsInline` is `BufferedWsgi`'s ``inline`` test. For a state read of a user this
process owns, it takes the session's published `GetState` reply (`KeyedActors.published`:
never blocks, never starts a session) and leaves it in the WSGI environ; the whole app —
token check, rate limit, metrics, the same resource — then runs on the loop, and the
resource answers with that reply instead of asking. Anything else (another route, a user
owned elsewhere, no live session, a busy one, a stale snapshot) runs on a request thread as
before, where the ask may wait. The reply is read when the request is whole, so whatever
was answered before it was sent is in it (`actors.Snapshot`).

Only with the rate limit in this process (no ``REDIS_URL``): the shared limiter is a Redis
round trip, which must not run on the loop.
"""

from __future__ import annotations

import re
from typing import Any

from actors import KeyedActors
from yabot.cluster.routing import AskRouter
from yabot.sessions.messages import GET_STATE, UserState

#: The environ key of the prefetched reply: ``(user id as in the path, UserState)``.
PREFETCHED_STATE = "yabot.prefetched_state"
_STATE_PATH = re.compile(r"^/user/([1-9][0-9]{0,15})/state$")


class StateReadsInline:
    """Says which requests are state reads a snapshot already answers, prefetching it."""

    def __init__(self, sessions: KeyedActors[int, Any], router: AskRouter | None) -> None:
        self._sessions = sessions
        self._router = router

    def __call__(self, environ: dict[str, Any]) -> bool:
        if environ["REQUEST_METHOD"] != "GET":
            return False
        match = _STATE_PATH.match(environ["PATH_INFO"])
        if match is None:
            return False
        user_id = int(match[1])
        router = self._router
        if router is not None and not router.owns(user_id):
            return False  # forwarded to the owner: a network round trip, on a thread
        state = self._sessions.published(user_id, GET_STATE)
        if state is None:
            return False
        environ[PREFETCHED_STATE] = (match[1], state)
        return True


def prefetched_state(environ: dict[str, Any], user_id: str) -> UserState | None:
    """The reply `StateReadsInline` took for the request of ``user_id`` (the path's segment,
    so that the resource need not parse it again), if it took one."""
    prefetched = environ.get(PREFETCHED_STATE)
    if prefetched is None or prefetched[0] != user_id:
        return None
    state: UserState = prefetched[1]
    return state
