#!/bin/sh
# deploy/streamhub.service: systemd must accept it, and it must stay
# hardened.
#
#  1. `systemd-analyze verify` on a copy whose ExecStart names the server
#     under test (verify refuses a unit whose binary does not exist, and
#     /usr/local/bin/streamhubd need not exist here).  verify exits 0 on
#     a misspelt key or a bad value, only warning: any output fails.
#  2. the directives the service must keep (its own user, no new
#     privileges, a read-only system, no capabilities...).
#  3. `systemd-analyze security --offline=yes`: the exposure score
#     systemd computes stays at 2.0 or below ("OK"; the unit scores 1.6).
#
# usage: check_unit.sh STREAMHUBD deploy/streamhub.service
set -eu
bin=$1
unit=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not found (Debian's systemd): not checked"
  exit 77
fi
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=/usr/local/bin/streamhubd |ExecStart=$bin |" "$unit" \
  >"$dir/streamhub.service"
grep -q "^ExecStart=$bin " "$dir/streamhub.service" || {
  echo "no ExecStart=/usr/local/bin/streamhubd line in $unit"; exit 1; }

out=$(systemd-analyze verify --man=no "$dir/streamhub.service" 2>&1) || {
  echo "$out"; echo "systemd-analyze verify failed"; exit 1; }
if [ -n "$out" ]; then
  echo "$out"
  echo "systemd-analyze verify warned (above): fix the unit"
  exit 1
fi
echo "systemd-analyze verify: no warnings"

missing=0
for want in 'DynamicUser=yes' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
            'ProtectHome=yes' 'PrivateTmp=yes' 'CapabilityBoundingSet=' \
            'StateDirectory=streamhub' 'SystemCallFilter=@system-service' \
            'Restart=on-failure'; do
  grep -qx "$want" "$unit" || { echo "missing: $want"; missing=1; }
done
grep -q '^RestrictAddressFamilies=' "$unit" ||
  { echo "missing: RestrictAddressFamilies="; missing=1; }
grep -q '^LimitNOFILE=' "$unit" || { echo "missing: LimitNOFILE="; missing=1; }
[ "$missing" -eq 0 ] || exit 1
echo "hardening directives: present"

if ! systemd-analyze security --offline=yes --threshold=20 --no-pager \
     "$dir/streamhub.service" >"$dir/security.txt" 2>&1; then
  cat "$dir/security.txt"
  echo "exposure above 2.0 (systemd-analyze security, above)"
  exit 1
fi
tail -n 1 "$dir/security.txt"
