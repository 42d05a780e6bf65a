"""The private server fixture itself: it crashes and comes back with its data (what the fault tests rely
on)."""

import psycopg
import pytest


def test_private_postgres_survives_an_immediate_shutdown(private_postgres):
    name = private_postgres.create_database("crash_me", extension=True)
    with private_postgres.connect(name) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    private_postgres.stop("immediate")
    with pytest.raises(psycopg.OperationalError):
        private_postgres.connect(name)
    private_postgres.start()
    with private_postgres.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1000
