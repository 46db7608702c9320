"""return_line_customs: each Norwegian return line matched to its export goods item(s)

Only creates the new table and its two indexes; nothing else changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:18:40.877356
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import portal.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('return_line_customs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('return_line_id', sa.Integer(), nullable=False),
    sa.Column('declaration_id', sa.Integer(), nullable=True),
    sa.Column('mrn', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
    sa.Column('allocations', sa.JSON(), nullable=False),
    sa.Column('relief', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('procedure', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('needs_attention', sa.Boolean(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('assessed_at', portal.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['declaration_id'], ['export_declaration.id'], ),
    sa.ForeignKeyConstraint(['return_line_id'], ['return_line.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('return_line_customs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_return_line_customs_declaration_id'), ['declaration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_line_customs_return_line_id'), ['return_line_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('return_line_customs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_return_line_customs_return_line_id'))
        batch_op.drop_index(batch_op.f('ix_return_line_customs_declaration_id'))

    op.drop_table('return_line_customs')
