"""Pure domain logic: no I/O, no asyncio, no SQL. Everything here is unit-tested."""
