from __future__ import annotations

import pytest
import redis

from tests.support.redis_server import RedisServer


def test_killed_server_restarts_on_the_same_port_with_its_stream(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    client.xadd("s", {"k": "v"})
    redis_server.kill()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    redis_server.start()
    assert client.xlen("s") == 1
    client.close()
