"""Brand settings (logo, colours, support contact), staff language, anonymisation marker.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("merchant_policy") as batch:
        batch.add_column(sa.Column("brand_colour", sa.String(7), nullable=False, server_default="#1f4e79"))
        batch.add_column(sa.Column("support_phone", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("support_url", sa.String(300), nullable=False, server_default=""))
        batch.add_column(sa.Column("logo", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("logo_content_type", sa.String(40), nullable=False, server_default=""))
        batch.add_column(sa.Column("logo_updated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("staff_user") as batch:
        batch.add_column(sa.Column("language", sa.String(5), nullable=False, server_default="en"))
    with op.batch_alter_table("customer") as batch:
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer") as batch:
        batch.drop_column("anonymised_at")
    with op.batch_alter_table("staff_user") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("merchant_policy") as batch:
        for name in ("logo_updated_at", "logo_content_type", "logo", "support_url", "support_phone", "brand_colour"):
            batch.drop_column(name)
