"""stats: daily figures

Revision ID: 0004_stats
Revises: 0003_events
Create Date: 2026-12-02 11:10:00

Expand only: a new table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_stats"
down_revision: str | Sequence[str] | None = "0003_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("starts", "choices", "purchases", "besitos_earned", "besitos_spent", "vip_starts",
          "vip_lapses")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "daily_stats",
        sa.Column("day", sa.Date(), nullable=False),
        *[sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
          for name in COUNTS],
        sa.PrimaryKeyConstraint("day", name=op.f("pk_daily_stats")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("daily_stats")
