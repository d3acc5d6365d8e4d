#!/usr/bin/env bash
# Regenerate the initial migration from the models. Only while no release has shipped:
# after the first release, add new revisions with `alembic revision --autogenerate` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f bridge/store/migrations/versions/0001_initial_schema.py
"$PY" - "$tmp" <<'PYEOF'
import sys
from alembic import command
from bridge.store.db import alembic_config
command.revision(alembic_config(f"sqlite:///{sys.argv[1]}/gen.db"), message="initial schema",
                 autogenerate=True, rev_id="0001")
PYEOF
sed -i 's/^Create Date: .*/Create Date: (regenerated from the models)/' \
  bridge/store/migrations/versions/0001_initial_schema.py
.venv/bin/ruff check --fix --quiet bridge/store/migrations/versions || true
.venv/bin/ruff format --quiet bridge/store/migrations/versions
