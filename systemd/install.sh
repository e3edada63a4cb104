#!/bin/sh
# Install or upgrade Watchstander as a systemd service, the way README.md ("Installing as a service")
# tells a sysadmin. Run as root from a checkout; running it again upgrades in place.
#
#   systemd/install.sh [--wheelhouse DIR] [PACKAGE]
#
# PACKAGE: what pip installs into the virtual environment: the checkout holding this script (the
#          default), or a wheel or sdist of the project built elsewhere.
# --wheelhouse DIR: install offline from DIR (wheels of the project's dependencies, made on a
#          machine that reaches the package index with `pip wheel -w DIR .`); for enclaves without it.
#
# What it does, and what it leaves alone:
# - /opt/watchstander/venv: a virtual environment (Debian 12 refuses system-wide pip), created once
#   and upgraded after; /usr/local/bin/watchstander links to its command;
# - /etc/systemd/system/watchstander.service, /etc/sysusers.d and /etc/tmpfiles.d snippets: replaced
#   on every run (local changes belong in `systemctl edit watchstander` drop-ins);
# - /etc/watchstander/watchstander.toml: written from the example only when absent (an existing
#   configuration is never touched); the current example is always at watchstander.toml.example;
# - creates the service user (systemd-sysusers) and its directories (systemd-tmpfiles);
# - with systemd running: daemon-reload, and a running service is restarted on the new code.
#   It never enables or starts the service by itself: that is the sysadmin's next step.
set -eu

PREFIX=${WATCHSTANDER_PREFIX:-/opt/watchstander}
VENV=$PREFIX/venv
HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(dirname "$HERE")
WHEELHOUSE=

while [ $# -gt 0 ]; do
  case $1 in
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; shift 2 ;;
    --wheelhouse=*) WHEELHOUSE=${1#*=}; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    *) SOURCE=$1; shift ;;
  esac
done

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo $0)"
[ -e "$SOURCE" ] || die "no such package or checkout: $SOURCE"
for f in watchstander.service watchstander.sysusers.conf watchstander.tmpfiles.conf watchstander.toml.example; do
  [ -f "$HERE/$f" ] || die "missing $HERE/$f: run the script from a complete checkout"
done
command -v python3 >/dev/null || die "python3 is missing: apt-get install python3 python3-venv"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is needed"
python3 -c 'import ensurepip' 2>/dev/null || die "the venv module is incomplete: apt-get install python3-venv"

# 1. The virtual environment (a broken one, e.g. after a Python upgrade, is made anew).
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  say "creating $VENV"
  rm -rf "$VENV"
  mkdir -p "$PREFIX"
  python3 -m venv "$VENV"
fi
upgrade=no
[ -x "$VENV/bin/watchstander" ] && upgrade=yes

# 2. The project and its dependencies.
set -- --quiet --disable-pip-version-check
[ -n "$WHEELHOUSE" ] && set -- "$@" --no-index --find-links "$WHEELHOUSE"
say "installing $SOURCE into $VENV"
"$VENV/bin/pip" install "$@" --upgrade "$SOURCE"
if [ -f "$SOURCE" ]; then
  # A wheel or sdist of an unchanged version number is still the newer code: put it in.
  "$VENV/bin/pip" install "$@" --force-reinstall --no-deps "$SOURCE"
fi
"$VENV/bin/watchstander" --help >/dev/null || die "the installed command does not run"
ln -sfn "$VENV/bin/watchstander" /usr/local/bin/watchstander

# 3. The service user, its directories and the unit.
install -D -m 0644 "$HERE/watchstander.sysusers.conf" /etc/sysusers.d/watchstander.conf
install -D -m 0644 "$HERE/watchstander.tmpfiles.conf" /etc/tmpfiles.d/watchstander.conf
systemd-sysusers /etc/sysusers.d/watchstander.conf
systemd-tmpfiles --create /etc/tmpfiles.d/watchstander.conf
install -D -m 0644 "$HERE/watchstander.service" /etc/systemd/system/watchstander.service

# 4. The configuration: the example is the starting point, an existing file is the site's own.
install -m 0640 -o root -g watchstander "$HERE/watchstander.toml.example" /etc/watchstander/watchstander.toml.example
if [ -e /etc/watchstander/watchstander.toml ]; then
  say "kept /etc/watchstander/watchstander.toml (compare with watchstander.toml.example after upgrades)"
else
  install -m 0640 -o root -g watchstander "$HERE/watchstander.toml.example" /etc/watchstander/watchstander.toml
  say "wrote /etc/watchstander/watchstander.toml from the example"
fi

# 5. Tell systemd, and move a running service onto the new code.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$upgrade" = yes ] && systemctl is-active --quiet watchstander.service; then
    say "restarting the running service on the new version"
    systemctl restart watchstander.service
  fi
fi

version=$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("watchstander"))')
say "watchstander $version is installed in $VENV"
cat <<'NEXT'

Next steps:
  1. Edit /etc/watchstander/watchstander.toml: the sources to listen to, [control.roles], the
     [[devices]] inventory; secrets go in /etc/watchstander/credentials/ (LoadCredential= lines,
     added with `systemctl edit watchstander`).
  2. Check it:            watchstander config check
  3. Start it at boot:    systemctl enable --now watchstander
  4. Watch it:            systemctl status watchstander; journalctl -u watchstander -p warning
  5. Use it:              watchstander incidents list  (root, or a member of the groups in [control.roles])
NEXT
