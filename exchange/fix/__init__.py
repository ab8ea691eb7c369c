"""A FIX 4.4 session layer over asyncio streams, shared by the venue and the gateway."""
