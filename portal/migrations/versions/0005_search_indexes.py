"""Indexes for support search: case-insensitive e-mail and name prefixes.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# text_pattern_ops lets PostgreSQL use the index for LIKE 'prefix%'; SQLite uses a range condition.
INDEXES = {
    "ix_customer_email_lower": ("lower(email)", "lower(email)"),
    "ix_customer_first_name_lower": ("lower(first_name) text_pattern_ops", "lower(first_name)"),
    "ix_customer_last_name_lower": ("lower(last_name) text_pattern_ops", "lower(last_name)"),
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, (pg_expr, sqlite_expr) in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON customer ({pg_expr if postgres else sqlite_expr})")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
