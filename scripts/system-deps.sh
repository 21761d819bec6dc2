#!/usr/bin/env bash
# Debian/Ubuntu packages carecheck needs beyond Python and Node (`make install`, `make demo`), and with --test
# those its tests need too (`make test`). Installed with apt-get when running as root; otherwise one line says
# what to install. Quick when everything is there (it only looks).
#   default-jdk-headless  ODK Validate (form builds) and javac for the tests that drive JavaRosa
#                         (tests/support/javarosa/)
#   python3-venv          the venv module
#   build-essential       make + g++ for enketo-transformer's native XSLT (npm rebuild; the web app's forms)
# --test adds:
#   postgresql            initdb/pg_ctl: the tests start a private cluster of their own (never the one on 5432)
#   redis-server          the tests start a private server of their own (never the one on 6379)
#   chromium              the report's browser test, the field web app's and the console's tests (headless, Playwright)
#   fonts-khmeros         Khmer fonts, so Khmer labels render in the browser tests' screenshots
#   iproute2, nftables    the degraded-link tests (network namespaces, tc tbf, nft packet loss)
#   caddy                 `caddy adapt` of deploy/Caddyfile (tests/deploy)
#   util-linux            runuser: as root, the test cluster runs as the `postgres` system user
# The packages' own services are not started by this script (a policy-rc.d while installing; Debian's postgresql
# still creates its "main" cluster, stopped): nothing here starts listening on 5432, 6379 or 80.
set -euo pipefail
missing=()
command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
{ command -v make >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1; } || missing+=(build-essential)
if [ "${1:-}" = "--test" ]; then
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  { command -v fc-list >/dev/null 2>&1 && fc-list | grep -qi "khmer"; } || missing+=(fonts-khmeros)
  { command -v ip && command -v tc; } >/dev/null 2>&1 || [ -x /usr/sbin/tc ] || missing+=(iproute2)
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
  command -v caddy >/dev/null 2>&1 || missing+=(caddy)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (apt-get)"
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the packages' own services from starting
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    trap '[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${missing[@]}" >/dev/null
else
  echo "carecheck needs: ${missing[*]} — install them (sudo apt-get install ${missing[*]}) and run make again." >&2
  exit 1
fi
