"""Real loopback servers (PostgreSQL, DNS, SMTP) started by the integration tests.

Every harness binds to 127.0.0.1 only, on a port chosen at start time, and is
both a context manager and an object with explicit ``start()`` / ``stop()``.
"""
