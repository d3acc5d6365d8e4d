"""Benchmarks (``make bench``); figures go to docs/performance.md."""

# Benchmarks always name their database (BRIDGE_DATABASE_URL), so the bridge needs an explicit
# secret key: a fixed one, for throw-away data only.
SECRET_KEY = "YmVuY2gtb25seS1rZXktbmV2ZXItYS1zZWNyZXQtMDA="
