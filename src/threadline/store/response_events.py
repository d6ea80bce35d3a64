"""The recorded stream of a background response: `response_events` rows (response id, sequence_number, the event's
JSON), appended by the Responses projection in the transactions that make them true, read by GET ?stream=true."""

from __future__ import annotations

import sqlalchemy as sa

from . import schema


def append(conn: sa.Connection, response_id: str, events: list[tuple[int, str]]) -> None:
    """Append (sequence_number, JSON text) events of `response_id`."""
    if events:
        conn.execute(
            schema.response_events.insert(),
            [{"response_id": response_id, "sequence_number": s, "data": d} for s, d in events],
        )


def next_seq(conn: sa.Connection, response_id: str) -> int:
    """The sequence_number the response's next event gets (0 for none recorded)."""
    t = schema.response_events
    last = conn.execute(sa.select(sa.func.max(t.c.sequence_number)).where(t.c.response_id == response_id)).scalar()
    return 0 if last is None else int(last) + 1


def after(conn: sa.Connection, response_id: str, starting_after: int, limit: int = 1000) -> list[tuple[int, str]]:
    """Recorded events with sequence_number > `starting_after`, in order, at most `limit`."""
    t = schema.response_events
    query = (
        sa.select(t.c.sequence_number, t.c.data)
        .where(t.c.response_id == response_id, t.c.sequence_number > starting_after)
        .order_by(t.c.sequence_number)
        .limit(limit)
    )
    return [(int(s), d) for s, d in conn.execute(query).all()]


def delete(conn: sa.Connection, response_id: str) -> None:
    conn.execute(schema.response_events.delete().where(schema.response_events.c.response_id == response_id))
