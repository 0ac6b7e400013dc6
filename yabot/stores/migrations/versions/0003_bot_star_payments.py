"""star payments: VIP bought with Telegram Stars

Revision ID: 0003_bot
Revises: 0002
Create Date: 2026-12-02 10:00:00

Expand only: a new table, so code of revision 0002 keeps working against it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_bot"
down_revision: str | Sequence[str] | None = "0003_faults"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "star_payments",
        sa.Column("charge_id", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", sa.Enum("paid", "refunded", name="star_payment_status",
                                    native_enum=False, create_constraint=True, length=16),
                  nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("stars > 0 AND days > 0", name=op.f("ck_star_payments_positive")),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"],
                                name=op.f("fk_star_payments_subscription_id_subscriptions")),
        sa.ForeignKeyConstraint(["user_id"], ["user_profiles.user_id"],
                                name=op.f("fk_star_payments_user_id_user_profiles"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("charge_id", name=op.f("pk_star_payments")),
    )
    with op.batch_alter_table("star_payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_star_payments_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("star_payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_star_payments_user_id"))
    op.drop_table("star_payments")
