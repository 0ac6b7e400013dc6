"""money bounds: balances and ledger amounts at most 2^53 - 1

Revision ID: 0003_api
Revises: 0003_faults
Create Date: 2026-12-02 09:30:00

CHECK constraints for `yabot.domain.besitos.MAX_BESITOS`. Adding them validates every row:
a database holding a balance past the limit (possible before this revision, by overflow)
fails here and needs that balance corrected by hand first, which is the point.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_api"
down_revision: str | Sequence[str] | None = "0003_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_BESITOS = 2**53 - 1  # frozen here: a migration never follows later code


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("user_documents", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_user_documents_besitos_at_most_max"), f"besitos <= {MAX_BESITOS}"
        )
    with op.batch_alter_table("besitos_ledger", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_besitos_ledger_balance_after_at_most_max"), f"balance_after <= {MAX_BESITOS}"
        )
        batch_op.create_check_constraint(
            op.f("ck_besitos_ledger_amount_at_most_max"),
            f"amount BETWEEN {-MAX_BESITOS} AND {MAX_BESITOS}",
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("besitos_ledger", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_besitos_ledger_amount_at_most_max"), type_="check")
        batch_op.drop_constraint(op.f("ck_besitos_ledger_balance_after_at_most_max"), type_="check")
    with op.batch_alter_table("user_documents", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_user_documents_besitos_at_most_max"), type_="check")
