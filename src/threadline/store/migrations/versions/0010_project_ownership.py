"""Project ownership: a `project_id` column on every object table, so each object belongs to one project.

Existing rows land in the default project (`proj_default`, the project of THREADLINE_API_KEYS and open servers).
Top-level objects (assistants, threads = conversations, files, uploads, vector stores, responses, containers) carry
it, and so do the children a request can reach by their own id (messages and conversation items, runs, run steps,
file batches) or that background work picks up without their parent (vector store files, claimed by ingestion).
The (project_id, seq) indexes keep the lists of one project as cheap as the lists of the whole table were.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"

OWNED = (
    "assistants",
    "threads",
    "messages",
    "runs",
    "run_steps",
    "files",
    "uploads",
    "vector_stores",
    "vector_store_files",
    "file_batches",
    "responses",
    "containers",
)
# (index name, table, columns): the lists a project pages through.
INDEXES = (
    ("ix_assistants_project", "assistants", ["project_id", "seq"]),
    ("ix_threads_project", "threads", ["project_id", "seq"]),
    ("ix_files_project", "files", ["project_id", "seq"]),
    ("ix_files_project_purpose", "files", ["project_id", "purpose", "seq"]),
    ("ix_vector_stores_project", "vector_stores", ["project_id", "seq"]),
    ("ix_containers_project", "containers", ["project_id", "seq"]),
)


def upgrade() -> None:
    for table in OWNED:
        op.add_column(table, sa.Column("project_id", sa.String(64), nullable=False, server_default="proj_default"))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table)
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("project_id")
