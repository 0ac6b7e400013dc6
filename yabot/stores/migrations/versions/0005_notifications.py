"""notifications: messages sent unasked, and who blocked the bot

Revision ID: 0005_notifications
Revises: 0004_stats
Create Date: 2026-12-02 11:20:00

Expand only: new tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_notifications"
down_revision: str | Sequence[str] | None = "0004_stats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "notifications",
        sa.Column("cause", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("cause", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_outcome_created_at"),
                              ["outcome", "created_at"], unique=False)
    op.create_table(
        "blocked_chats",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_blocked_chats")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("blocked_chats")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_outcome_created_at"))
    op.drop_table("notifications")
