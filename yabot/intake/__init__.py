"""The durable intake: every accepted input is stored in its partition's log before it is
acknowledged, and handed to the partition's owner in order (README "Scaling out")."""

from yabot.intake.entries import Delivery, Intake, IntakeEntry, partition_of
from yabot.intake.reader import IntakeReader

__all__ = ["Delivery", "Intake", "IntakeEntry", "IntakeReader", "partition_of"]
