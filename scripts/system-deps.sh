#!/usr/bin/env bash
# Debian/Ubuntu packages carecheck needs beyond Python and Node: Java for ODK Validate (form builds), the Java
# compiler for the tests that drive the real form engine (JavaRosa, tests/support/javarosa/), the venv module,
# a C/C++ toolchain for enketo-transformer's native XSLT (npm rebuild), Chromium for the browser tests and the
# field web app's test, and Khmer fonts so Khmer labels render. Installed with apt-get when running as root;
# otherwise one line says what to install.
set -euo pipefail
missing=()
command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
{ command -v make >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1; } || missing+=(build-essential)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
{ command -v fc-list >/dev/null 2>&1 && fc-list | grep -qi "khmer"; } || missing+=(fonts-khmeros)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "carecheck needs: ${missing[*]} — install them (sudo apt-get install ${missing[*]}) and run make again." >&2
  exit 1
fi
