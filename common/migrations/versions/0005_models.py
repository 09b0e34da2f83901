"""Training runs (check, train, compare) and published models (who made which model live, when).

Revision ID: 0005_models
Revises: 0004_erasure
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_models"
down_revision = "0004_erasure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the training runs and the published models.

    `training_runs.active` is 1 while a run is queued or running and NULL afterwards; being
    unique, it lets the database refuse a second training at once, from any process.
    """
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(200), nullable=False, server_default=""),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("active", sa.Integer, unique=True),
        sa.Column("pid", sa.Integer),
        sa.Column("inputs_digest", sa.String(64)),
        sa.Column("archive", sa.String(500)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("train_seconds", sa.Float),
        sa.Column("report", sa.Text),
        sa.Column("publishable", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "published_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("training_run_id", sa.Integer, sa.ForeignKey("training_runs.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("archive", sa.String(500), nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("live_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_by", sa.String(64)),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    """Drop the published models and the training runs."""
    op.drop_table("published_models")
    op.drop_table("training_runs")
