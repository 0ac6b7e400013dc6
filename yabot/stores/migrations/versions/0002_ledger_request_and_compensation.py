"""ledger: request fingerprint and compensation mark

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:45:00

Expand only: a nullable column and a column with a server default, so code of revision 0001
keeps working against it (zero-downtime rules, README "Stores").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("besitos_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("compensated", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("besitos_ledger", schema=None) as batch_op:
        batch_op.drop_column("compensated")
        batch_op.drop_column("request")
