"""A wrong password is said as a refused login, not as a server to start: the stack's servers answer and
refuse it (each enforces its credentials), and the message names the settings to check, never the
password, in one line with no driver dict (Reader, the read API's entry point; Dagster's storage check
every command makes first)."""

from __future__ import annotations

import pytest

from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.orchestration.runs import storage_reachable
from marketdata_assets.read import Reader

WRONG = "not-the-password-7f3a"


@pytest.mark.parametrize(
    ("store", "setting", "login"),
    [
        ("ClickHouse", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_USER / CLICKHOUSE_PASSWORD"),
        ("TimescaleDB", "TIMESCALE_PASSWORD", "TIMESCALE_USER / TIMESCALE_PASSWORD"),
        ("MongoDB", "MONGODB_PASSWORD", "MONGODB_USERNAME / MONGODB_PASSWORD"),
    ],
)
def test_a_wrong_password_is_a_refused_login_naming_what_to_check(monkeypatch, store, setting, login):
    monkeypatch.setenv(setting, WRONG)
    with pytest.raises(StoreUnavailable) as raised, Reader() as reader:
        reader.catalog(required=(store,))
    said = str(raised.value)
    assert raised.value.refused_login and said.startswith(f"{store} at 127.0.0.1:"), said
    assert "refused the login" in said and login in said and "not reachable" not in said, said
    assert WRONG not in said and "full error" not in said and "\n" not in said, said


def test_dagsters_storage_with_a_wrong_password_is_a_refused_login(monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", WRONG)
    said = storage_reachable()
    assert said is not None and said.refused_login, said
    assert "DAGSTER_PG_USER / DAGSTER_PG_PASSWORD" in str(said) and WRONG not in str(said)
