#!/bin/bash
# A real systemd (PID 1) in a container, adapted from ../shared/recipes/real-systemd.sh (proven on
# these Debian 12 machines with systemd 252). Needs root.
#
#   real_systemd.sh build TREE            debootstrap a bookworm minbase tree (2-5 min, ~310 MB), once
#   real_systemd.sh run TREE CMD...       run CMD in the tree like a chroot (not booted; host network)
#   real_systemd.sh boot TREE TEST OUT [TIMEOUT_S]
#                                         boot the tree, run TEST inside as a oneshot unit after
#                                         multi-user.target; /out inside is OUT; exit with TEST's status
#
# Facts learned on these machines: there is no host systemd or D-Bus (--register=no --keep-unit);
# SuccessAction=/FailureAction=exit-force make the container exit by itself; DynamicUser= needs
# libnss-systemd; cgroup limits are not enforced; `sysctl -w net.core.*` fails inside; nspawn
# leaves empty payload/supervisor cgroups behind (removed after each boot).
set -u
cmd=${1:?usage: real_systemd.sh build|run|boot TREE ...}; TREE=${2:?tree}; shift 2

case $cmd in
build)
  command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container debootstrap >/dev/null
  [ -x "$TREE/usr/lib/systemd/systemd" ] && exit 0
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  rm -rf "$TREE.new"
  # Built beside the cache and renamed when complete: an interrupted build is never taken for a tree.
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,libnss-systemd,python3,python3-venv,ca-certificates,procps,iproute2 \
    bookworm "$TREE.new" "${MIRROR:-http://deb.debian.org/debian}" >"$TREE.debootstrap.log" 2>&1 \
    || { echo "debootstrap failed (log: $TREE.debootstrap.log)" >&2; exit 1; }
  cp /etc/resolv.conf "$TREE.new/etc/resolv.conf" 2>/dev/null || true
  rm -rf "$TREE" && mv "$TREE.new" "$TREE"
  ;;
run)
  exec systemd-nspawn --quiet --register=no --keep-unit -D "$TREE" --pipe "$@" </dev/null
  ;;
boot)
  TEST=${1:?test script}; OUT=${2:?out dir}; TMO=${3:-600}
  mkdir -p "$OUT" "$TREE/opt/real-systemd-test"
  install -m 0755 "$TEST" "$TREE/opt/real-systemd-test/test.sh"
  cat >"$TREE/etc/systemd/system/real-systemd-test.service" <<UNIT
[Unit]
Description=test inside a real systemd
After=multi-user.target
SuccessAction=exit-force
FailureAction=exit-force

[Service]
Type=oneshot
ExecStart=/opt/real-systemd-test/test.sh
StandardOutput=append:/out/test.log
StandardError=append:/out/test.log
TimeoutStartSec=infinity
UNIT
  timeout -k 30 "$TMO" systemd-nspawn --quiet --register=no --keep-unit --private-network --console=read-only \
    -D "$TREE" --bind="$OUT":/out -b -- systemd.wants=real-systemd-test.service \
    systemd.mask=console-getty.service systemd.show_status=no </dev/null >"$OUT/console.log" 2>&1
  rc=$?
  for h in unified systemd; do for d in payload supervisor; do
    [ -d /sys/fs/cgroup/$h/$d ] && find /sys/fs/cgroup/$h/$d -depth -type d -exec rmdir {} + 2>/dev/null
  done; done
  exit $rc
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
