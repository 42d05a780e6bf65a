"""scripts/stack's redis-server on a private state directory: not started by a plain `up` while the
cache is off, started when named or when REDIS_CACHE is on, its status and `down` its own."""

from __future__ import annotations

import asyncio
import importlib.util

import redis.asyncio as aioredis
import redis.exceptions

from tests.conftest import free_port
from tests.test_stack import STACK, stack


def stack_module():
    spec = importlib.util.spec_from_file_location("stack_script", STACK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_plain_up_starts_redis_only_when_the_cache_is_on(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    redis_service = stack_module().Redis(tmp_path)
    monkeypatch.setenv("REDIS_CACHE", "false")
    assert redis_service.up(named=False).startswith("not started (REDIS_CACHE off")
    assert not redis_service.wanted(named=False) and redis_service.wanted(named=True)
    monkeypatch.setenv("REDIS_CACHE", "true")
    assert redis_service.wanted(named=False)


def test_redis_lifecycle(tmp_path):
    """Also: the user's own password (an exported REDIS_PASSWORD) is the one the server takes."""
    port = free_port()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "REDIS_CACHE": "false",
        "REDIS_PASSWORD": "users-own-choice",
    }
    assert "started" in stack(tmp_path, "up", "redis", **env).stdout  # named: started though the cache is off
    assert "already running" in stack(tmp_path, "up", "redis", **env).stdout
    assert f"port {port}" in stack(tmp_path, "status", "redis", **env).stdout

    async def ping(password: str | None) -> bool:
        client = aioredis.Redis.from_url(env["REDIS_URL"], password=password)
        try:
            return await client.ping()
        except redis.exceptions.AuthenticationError as error:
            return str(error)
        finally:
            await client.aclose()

    try:
        assert asyncio.run(ping("users-own-choice")) is True
        assert asyncio.run(ping(None)) == "Authentication required."
        assert "WRONGPASS" in asyncio.run(ping("wrong")) or "invalid" in asyncio.run(ping("wrong"))
    finally:
        assert "stopped" in stack(tmp_path, "down", "redis", **env).stdout
    assert "stopped" in stack(tmp_path, "status", "redis", **env).stdout
