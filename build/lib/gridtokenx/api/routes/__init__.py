"""REST routes, one module per domain. Every handler is `async def`, so it runs on the
node's event loop between consensus steps and reads one consistent committed state."""
