"""Personal data: the daily limit per contact by a keyed hash; the conversations of inbox decisions.

Revision ID: 0008_privacy
Revises: 0007_installed_model
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_privacy"
down_revision = "0007_installed_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add contact_requests (a keyed hash of each request's contact and day) and review_sources.

    The limit counts contact_requests from now on: requests made in the day before the upgrade
    are not counted (at most one day's worth). Decisions made before have no source: erasing
    a person cannot find them by conversation (their text was masked, as it is now).
    """
    op.create_table(
        "contact_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contact_key", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "review_sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("text_key", sa.String(64), nullable=False, index=True),
        sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    )


def downgrade() -> None:
    """Drop both tables (the requests and decisions stay)."""
    op.drop_table("review_sources")
    op.drop_table("contact_requests")
