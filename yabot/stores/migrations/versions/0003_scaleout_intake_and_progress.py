"""scale-out: the SQL intake and users' durable progress (handled updates)

Revision ID: 0003_scaleout
Revises: 0003_events
Create Date: 2026-12-02 09:45:00

Expand only: two new tables, so code of the revision before keeps working against it.
The user's event ``seq`` is not here: it is ``user_documents.event_seq`` (0003_faults).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_scaleout"
down_revision: str | Sequence[str] | None = "0005_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "intake_entries",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("user_key", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_intake_entries")),
    )
    op.create_index(op.f("ix_intake_entries_partition_position"), "intake_entries",
                    ["partition", "position"], unique=False)
    op.create_table(
        "user_progress",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("handled_updates", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_progress")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("user_progress")
    op.drop_index(op.f("ix_intake_entries_partition_position"), table_name="intake_entries")
    op.drop_table("intake_entries")
