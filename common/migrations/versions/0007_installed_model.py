"""The assistant as installed: the model `make train` built, recorded once, kept unchanged.

Revision ID: 0007_installed_model
Revises: 0006_live_chat
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_installed_model"
down_revision = "0006_live_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add installed_model: at most one row (`slot` is 1 and unique), written the first time it is needed.

    Visitors get this model while nothing is published (and after rolling back the first
    publication); a later `make train` never changes it (staff/service/models.py).
    """
    op.create_table(
        "installed_model",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("archive", sa.String(500), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop installed_model (visitors then get whatever `make train` built last, as before)."""
    op.drop_table("installed_model")
