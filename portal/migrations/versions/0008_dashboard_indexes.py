"""Indexes for the dashboard's date-range filters and the outbox dispatcher's claim.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (("ix_orders_placed_at", "orders", "placed_at"), ("ix_return_created_at", "return", "created_at"),
           ("ix_refund_issued_at", "refund", "issued_at"))
OUTBOX_CLAIM = ("ix_outbox_message_state_due", "outbox_message", ["state", "next_attempt_at"])


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column])
    op.create_index(*OUTBOX_CLAIM)


def downgrade() -> None:
    op.drop_index(OUTBOX_CLAIM[0], table_name=OUTBOX_CLAIM[1])
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
