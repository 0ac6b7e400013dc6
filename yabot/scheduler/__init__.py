"""Durable timers: "at time T, do X (for user U)", stored in SQL, fired once.

    from yabot.scheduler import Scheduler, JobHandlers, schedule, cancel
"""

from yabot.scheduler.jobs import Job, cancel, schedule
from yabot.scheduler.scheduler import JobHandlers, Scheduler, SchedulerMetrics

__all__ = ["Job", "JobHandlers", "Scheduler", "SchedulerMetrics", "cancel", "schedule"]
