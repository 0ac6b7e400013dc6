"""outbox: per-user event seq and pending transfers

Revision ID: 0003_faults
Revises: 0002
Create Date: 2026-12-02 09:45:00

Expand only: a column with a server default and a new table, so code of revision 0002
keeps working against it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_faults"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("user_documents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("event_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "pending_transfers",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("from_user_id", sa.BigInteger(), nullable=False),
        sa.Column("to_user_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("credit_key", sa.String(length=128), nullable=False),
        sa.Column("request", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=256), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_pending_transfers")),
    )
    with op.batch_alter_table("pending_transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_transfers_created_at"), ["created_at"],
                              unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("pending_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_transfers_created_at"))
    op.drop_table("pending_transfers")
    with op.batch_alter_table("user_documents", schema=None) as batch_op:
        batch_op.drop_column("event_seq")
