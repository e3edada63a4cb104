"""The daemon deployed as README.md tells a sysadmin, under a real systemd 252 in a container.

A debootstrap'd bookworm tree is cached at /var/cache/watchstander-ci/bookworm (built once, 2-5 min;
the cache is never modified: each run works on a copy). The project is installed into the copy with
systemd/install.sh from a wheelhouse built here (offline inside, as in an enclave), the site's
configuration is edited, the installer is run again (an upgrade must keep it), and the tree is booted
with systemd-nspawn; tests/system/in_container.sh then checks the service from inside and writes one
line per check to /out/results.tsv, which this test asserts on.

Run: `python -m pytest -m system tests/system` (root; the default run deselects the `system` marker).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system, pytest.mark.privileged, pytest.mark.timeout(2400)]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("WATCHSTANDER_CI_CACHE", "/var/cache/watchstander-ci"))
BASE_TREE = CACHE / "bookworm"
WHEELHOUSE = CACHE / "wheelhouse"
RECIPE = HERE / "real_systemd.sh"
# Not copied into the container: the build and test environments, caches, VCS metadata.
IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "dist",
                                ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis")


def _sh(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], check=False, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {done.returncode}\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _tools_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (systemd-nspawn, debootstrap)")
    if not (shutil.which("systemd-nspawn") and shutil.which("debootstrap")) and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "systemd-container", "debootstrap"], check=False,
                       capture_output=True, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    missing = [b for b in ("systemd-nspawn", "debootstrap") if not shutil.which(b)]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing and not installable (Debian systemd-container, debootstrap)")
    if not Path("/sys/fs/cgroup").is_dir():
        pytest.skip("no /sys/fs/cgroup: systemd cannot boot in a container here")


def _site_config(example: str) -> str:
    """The installed example, edited as a site would: every source on, a short flush for the test."""
    edits = {
        '# syslog_tcp = ["0.0.0.0:5514"]': 'syslog_tcp = ["127.0.0.1:5514"]  #',
        '# files = ["/var/log/suricata/eve.json"]': 'files = ["/var/log/ws-unreadable.log"]  #',
        '# snmp_traps = ["0.0.0.0:10162"]': 'snmp_traps = ["127.0.0.1:10162"]  #',
        "flush_s = 10.0": "flush_s = 5.0",
        "# [metrics]\n# enabled = true\n# listen": "[metrics]\nenabled = true\nlisten",
    }
    for old, new in edits.items():
        assert old in example, f"the example config no longer has {old!r}: update this test"
        example = example.replace(old, new)
    assert "failures = 10\n" in example, "the in-container reload check edits [detectors.bruteforce] failures"
    # Live capture (CAP_NET_RAW) on the container's loopback; no BPF filter: the tree has no libpcap.
    return example + '\n[[sources.capture]]\ninterface = "lo"\n'


def test_installed_service_under_real_systemd() -> None:
    """README install path + shipped unit under systemd 252: READY, intake, reload, stop, kill -9, watchdog."""
    _tools_or_skip()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    CACHE.mkdir(parents=True, exist_ok=True)
    cold = not (BASE_TREE / "usr/lib/systemd/systemd").exists()
    _sh("bash", RECIPE, "build", BASE_TREE, timeout=900)
    timings["tree" + (" (cold: debootstrap)" if cold else " (cached)")] = time.monotonic() - t0

    # The wheelhouse: the project's wheel, fresh each run, and its dependencies (kept between runs).
    t = time.monotonic()
    WHEELHOUSE.mkdir(exist_ok=True)
    for old in WHEELHOUSE.glob("watchstander-*.whl"):
        old.unlink()
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", WHEELHOUSE]
    # Built from a clean copy: setuptools' build/ folder in a checkout can carry modules since deleted.
    src = CACHE / f"src-{os.getpid()}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(REPO, src, ignore=IGNORE)
    try:
        _sh(*pip, "--no-deps", src, timeout=900)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    (wheel,) = WHEELHOUSE.glob("watchstander-*.whl")
    try:  # every dependency already in the wheelhouse: no need to ask the package index
        _sh(*pip, "--no-index", "--find-links", WHEELHOUSE, wheel, timeout=900)
    except AssertionError:
        _sh(*pip, "--find-links", WHEELHOUSE, wheel, timeout=900)
    timings["wheelhouse"] = time.monotonic() - t

    for stale in [*CACHE.glob("run-*"), *CACHE.glob("src-*")]:  # left by a run that was killed
        if not Path(f"/proc/{stale.name.split('-', 1)[1]}").exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(stale)], timeout=600, check=False)
    run_tree = CACHE / f"run-{os.getpid()}"
    out = CACHE / "last-run"  # the container's /out: results.tsv, test.log, journal.txt, security.txt
    shutil.rmtree(out, ignore_errors=True)
    try:
        t = time.monotonic()
        _sh("cp", "-a", "--reflink=auto", BASE_TREE, run_tree, timeout=300)
        # What the sysadmin has: a checkout (copied in), and the wheelhouse.
        shutil.copytree(REPO, run_tree / "root/watchstander", ignore=IGNORE)
        shutil.copytree(WHEELHOUSE, run_tree / "root/wheelhouse")
        install = ["bash", RECIPE, "run", run_tree, "sh", "/root/watchstander/systemd/install.sh",
                   "--wheelhouse", "/root/wheelhouse", f"/root/wheelhouse/{wheel.name}"]
        first = _sh(*install, timeout=900)
        timings["install"] = time.monotonic() - t

        # The site's configuration, then the installer again: an upgrade keeps it.
        cfg = run_tree / "etc/watchstander/watchstander.toml"
        site = _site_config(cfg.read_text(encoding="utf-8"))
        cfg.write_text(site, encoding="utf-8")
        unreadable = run_tree / "var/log/ws-unreadable.log"
        unreadable.write_text("root only\n", encoding="utf-8")
        unreadable.chmod(0o600)
        t = time.monotonic()
        again = _sh(*install, timeout=900)
        timings["install again (upgrade)"] = time.monotonic() - t
        assert cfg.read_text(encoding="utf-8") == site, "re-running install.sh changed the site's configuration"
        assert "kept /etc/watchstander/watchstander.toml" in again.stdout
        assert "Next steps" in first.stdout
        st = cfg.stat()
        assert oct(st.st_mode & 0o777) == "0o640", "the config must stay root:watchstander 0640"

        probe_dir = run_tree / "opt/watchstander-test"
        probe_dir.mkdir(parents=True)
        shutil.copy(HERE / "probe.py", probe_dir / "probe.py")
        t = time.monotonic()
        boot = subprocess.run(["bash", str(RECIPE), "boot", str(run_tree), str(HERE / "in_container.sh"), str(out),
                               "900"], check=False, capture_output=True, text=True, timeout=1000, stdin=subprocess.DEVNULL)
        timings["boot + checks"] = time.monotonic() - t
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(run_tree)], timeout=600, check=False)
    timings["total"] = time.monotonic() - t0

    rows = []
    results = out / "results.tsv"
    if results.exists():
        rows = [line.split("\t", 2) for line in results.read_text(encoding="utf-8").splitlines() if line]
    width = max((len(r[0]) for r in rows), default=10)
    summary = ["", "real-systemd test (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")"]
    summary += [f"  {name:<{width}}  {state.upper():<4}  {detail}" for name, state, detail in rows]
    summary.append(f"  artifacts: {out} (test.log, journal.txt, security.txt, console.log)")
    print("\n".join(summary))
    assert rows, f"no results from the container (exit {boot.returncode}); console:\n" + \
        (out / "console.log").read_text(encoding="utf-8", errors="replace")[-3000:] if (out / "console.log").exists() else ""
    failed = [f"{name}: {detail}" for name, state, detail in rows if state == "fail"]
    assert not failed, "failed inside the container:\n" + "\n".join(failed) + "\n" + "\n".join(summary)
    assert boot.returncode == 0, f"the container exited {boot.returncode}"
