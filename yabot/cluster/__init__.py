"""Who owns which partition: leases in Redis with fencing tokens, heartbeats, fair shares
(README "Scaling out")."""

from yabot.cluster.ownership import LocalOwnership, Ownership, RedisOwnership

__all__ = ["LocalOwnership", "Ownership", "RedisOwnership"]
