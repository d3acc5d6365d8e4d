#!/usr/bin/env bash
# Install what the test suite needs beyond Python packages: the real servers it starts on
# loopback (PostgreSQL, Samba AD DC, the oidc-provider OpenID Provider) and Chromium for the
# browser tests. Idempotent: only what is missing is installed. Runs as root on the project's
# machines (apt-get works).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
# PostgreSQL server binaries (and the 'postgres' system user the harness runs them as).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! id postgres >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
# Samba Active Directory domain controller and LDAP tools.
command -v samba >/dev/null 2>&1 || need_apt+=(samba-ad-dc samba-ad-provision)
command -v samba-tool >/dev/null 2>&1 || need_apt+=(samba-ad-provision)
command -v ldbadd >/dev/null 2>&1 || need_apt+=(ldb-tools)
command -v ldapsearch >/dev/null 2>&1 || need_apt+=(ldap-utils)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Chromium for the browser tests of the HTML forms (driven through Playwright).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${need_apt[*]}" >&2
  # Debian's postgresql package would create and start a cluster on :5432; the tests make
  # their own clusters in temporary folders.
  $SUDO mkdir -p /etc/postgresql-common
  echo 'create_main_cluster = false' | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their own services (a system Samba DC would hold the fixed LDAP
  # ports the tests' DC needs; PostgreSQL's would take :5432): policy-rc.d says "no".
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  [ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
  # Belt and braces, for machines where a service was started anyway.
  for svc in samba-ad-dc smbd nmbd winbind; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
  $SUDO pkill -x samba >/dev/null 2>&1 || true
fi

# The OpenID Provider (npm oidc-provider), pinned by package-lock.json.
op_dir=tests/servers/oidc_provider
if [ ! -d "$op_dir/node_modules/oidc-provider" ] || \
   [ "$op_dir/package-lock.json" -nt "$op_dir/node_modules/.package-lock.json" ]; then
  echo "install-test-deps: npm ci in $op_dir" >&2
  (cd "$op_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

# axe-core for the browser tests' accessibility check (injected into the pages under test;
# the end-user pages' and the console's tests alike), pinned by its package-lock.json.
axe_dir=tests/browser
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ] || \
   [ "$axe_dir/package-lock.json" -nt "$axe_dir/node_modules/.package-lock.json" ]; then
  echo "install-test-deps: npm ci in $axe_dir" >&2
  (cd "$axe_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
