#!/usr/bin/env bash
# Install, with apt-get, the system programs the tests use and that are missing.
# Each entry is program:package; a program is found on PATH or in the
# directories Debian puts it in (PostgreSQL's binaries are not on PATH).
set -euo pipefail

ENTRIES=(
  ps:procps sha256sum:coreutils dpkg-query:dpkg ssh-keygen:openssh-client openssl:openssl
  mke2fs:e2fsprogs mkswap:util-linux blkid:util-linux rsyslogd:rsyslog
  initdb:postgresql mariadb-install-db:mariadb-server redis-server:redis-server
)

found() {
  command -v "$1" >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null && return 0
  [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=()
for entry in "${ENTRIES[@]}"; do
  found "${entry%%:*}" || missing+=("${entry##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
