"""Wiring of the venue process: journal, acceptor session, order handling, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from exchange.fix.session import ACCEPTOR, Faults, Session, serve
from exchange.fix.sqlite_store import SqliteSessionStore, open_database
from exchange.venue.journal import Journal
from exchange.venue.venue import Venue, VenueConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VenueProcess:
    host: str
    port: int
    db: str
    comp_id: str
    client_comp_id: str
    config: VenueConfig
    faults: Faults


async def run(process: VenueProcess, ready=None) -> None:
    """Serve until SIGTERM or SIGINT, then log the client out and stop."""
    loop = asyncio.get_running_loop()
    Path(process.db).parent.mkdir(parents=True, exist_ok=True)
    connection = open_database(process.db)
    name = f"{process.comp_id}-{process.client_comp_id}"
    store = SqliteSessionStore(connection, name)
    journal = Journal(connection, name)
    venue: Venue | None = None

    def on_app(message):
        venue.on_app(message)

    session = Session(
        sender_comp_id=process.comp_id,
        target_comp_id=process.client_comp_id,
        store=store,
        role=ACCEPTOR,
        on_app=on_app,
        faults=process.faults,
        schedule=loop.call_soon,
    )
    venue = Venue(session=session, journal=journal, config=process.config, loop=loop)
    venue.start()
    session.flush()
    server = await serve(session, process.host, process.port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready:
        ready(server)
    try:
        await stop.wait()
    finally:
        logger.info("venue stopping")
        server.close()
        if session.logged_on:
            session.logout("Venue shutting down")
            for _ in range(20):
                if not session.connected:
                    break
                await asyncio.sleep(0.05)
        session.disconnect("venue stopped")
        venue.stop()
        # Let the cancelled firehose and already scheduled flushes run before the journal closes.
        await asyncio.sleep(0.05)
        session.flush()
        connection.close()
