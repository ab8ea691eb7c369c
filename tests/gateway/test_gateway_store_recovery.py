"""run_gateway after its database failed: it logs on again only with a store reloaded from it."""

import asyncio
from types import SimpleNamespace

import pytest

from exchange import fix_gateway
from exchange.fix.session import INITIATOR, Session
from exchange.fix_gateway import Gateway, GatewayConfig

pytestmark = pytest.mark.django_db


def test_no_logon_before_the_store_is_reloaded_after_a_database_failure(monkeypatch):
    """make chaos's MySQL crash: the reload after the dropped connection failed (MySQL still down).

    The gateway then connected and logged on anyway with ``store_failed`` still set, so
    its outbox loop skipped every turn: logged on, nothing sent or reconciled, for good.
    """
    config = GatewayConfig(
        host="127.0.0.1",
        port=1,
        sender_comp_id="BROKER",
        target_comp_id="VENUE",
        reconnect_base=0.01,
        reconnect_cap=0.02,
    )
    gateway = Gateway(config)
    gateway.session = Session(
        sender_comp_id="BROKER", target_comp_id="VENUE", store=gateway.store, role=INITIATOR, on_app=print
    )
    events = []

    def flaky_reload():
        if events.count("reload failed") < 3:
            events.append("reload failed")
            raise ConnectionError("database unreachable")
        events.append("reloaded")

    async def connect(session, host, port):
        events.append(("connect", gateway.store_failed))

        async def closed():
            return "closed"

        return asyncio.create_task(closed())

    # The database side is the store's reload alone here (no connection to close).
    monkeypatch.setattr(fix_gateway, "close_old_connections", lambda: None)
    monkeypatch.setattr(fix_gateway, "connection", SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(gateway.store, "reload", flaky_reload)
    monkeypatch.setattr(fix_gateway, "connect", connect)
    gateway.store_failed = True  # the last connection ended on a failed commit

    async def drill():
        task = asyncio.create_task(gateway._connection_loop())
        for _ in range(200):
            if ("connect", False) in events or len(events) > 20:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(drill())

    assert events[:4] == ["reload failed"] * 3 + ["reloaded"]
    assert events[4] == ("connect", False)
