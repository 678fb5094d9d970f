"""The connection pool: its synchronous bookkeeping and the connection tasks."""
