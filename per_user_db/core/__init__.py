"""The pure core: values in, values out; no I/O, no clock, no environment.

Every module here is importable without asyncio, aiohttp, sqlite3, socket or threading
(a test checks it), so the logic that matters most (database names, the migration
planner, the protocol codec, token claims) is testable as plain functions.
"""
