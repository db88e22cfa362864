"""Power sources on fake sysfs trees and a fake `vcgencmd` the tests create."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from configspec_opt.errors import UsageError
from profiler.errors import PowerSourceError
from profiler.power import PowerSampler, discover, make_source
from profiler.power.base import counter_delta
from profiler.power.jetson import JetsonSource
from profiler.power.rapl import RaplSource
from profiler.power.rpi import RpiPmicSource, parse_pmic

PMIC_OUTPUT = """\
 3V7_WL_SW_A current(0)=0.00000000A
 3V3_SYS_A current(1)=0.05270325A
 1V8_SYS_A current(2)=0.16002000A
 VDD_CORE_A current(7)=0.71200000A
 3V7_WL_SW_V volt(8)=3.74816000V
 3V3_SYS_V volt(9)=3.31237600V
 1V8_SYS_V volt(10)=1.79804700V
 VDD_CORE_V volt(14)=0.89690400V
 EXT5V_V volt(24)=5.15063000V
 BATT_V volt(25)=0.00000000V
"""


def _write(p: Path, text: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def rapl_tree(root: Path, energy: int = 1000, max_range: int = 262143328850) -> Path:
    base = root / "sys/class/powercap"
    for dom, name in (("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "core"),
                      ("intel-rapl:0:1", "dram"), ("intel-rapl:1", "psys")):
        _write(base / dom / "name", name + "\n")
        _write(base / dom / "energy_uj", f"{energy}\n")
        _write(base / dom / "max_energy_range_uj", f"{max_range}\n")
    return base


def test_counter_delta_wraps() -> None:
    assert counter_delta(100, 250, 1000) == 150
    assert counter_delta(900, 50, 1000) == 150


def test_rapl_sums_package_and_dram_only_and_handles_wrap(tmp_path: Path) -> None:
    base = rapl_tree(tmp_path, energy=999_000, max_range=1_000_000)
    src = RaplSource(tmp_path)
    assert src.describe()["domains"] == ["intel-rapl:0 (package-0)", "intel-rapl:0:1 (dram)"]
    assert src.read().energy_j == 0.0
    # package wraps (999000 -> 1000: +2000 uJ), dram +5000 uJ, core and psys ignored
    (base / "intel-rapl:0/energy_uj").write_text("1000\n")
    (base / "intel-rapl:0:1/energy_uj").write_text("1004000\n")
    (base / "intel-rapl:0:0/energy_uj").write_text("5\n")
    assert src.read().energy_j == pytest.approx(0.007)


def _enterable_by_anyone(path: Path) -> bool:
    """Every directory from / down to `path` grants search (x) to other users."""
    p = path.resolve()
    return all(os.stat(d).st_mode & stat.S_IXOTH for d in (p, *p.parents))


def _world_readable_tmpdir() -> Path:
    """A fresh directory an unprivileged user can reach, wherever TMPDIR or the clone lives."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        if Path(base).is_dir() and _enterable_by_anyone(Path(base)):
            root = Path(tempfile.mkdtemp(prefix="rapl-", dir=base))
            os.chmod(root, 0o755)
            return root
    pytest.skip("no temporary directory that other users may enter (/tmp, /var/tmp, /dev/shm)")


def _interpreter_for(prefix: list[str], cwd: Path) -> str | None:
    """The first Python >= 3.10 that `prefix` (an unprivileged user) can start, if any.

    The test's own interpreter may live where that user cannot go (a virtual environment
    inside a clone in a 0700 directory or in root's home); the child needs only the standard
    library and the copied packages, so the base or the system interpreter serves as well.
    """
    seen: list[str] = []
    for cand in (sys.executable, os.path.realpath(sys.executable),
                 getattr(sys, "_base_executable", None), shutil.which("python3"),
                 "/usr/bin/python3", "/usr/local/bin/python3"):
        if not cand or cand in seen:
            continue
        seen.append(cand)
        try:
            ok = subprocess.run([*prefix, cand, "-c",
                                 "import sys; sys.exit(sys.version_info < (3, 10))"],
                                capture_output=True, cwd=cwd, timeout=60, check=False)
        except OSError:  # not executable by this (unprivileged) user
            continue
        if ok.returncode == 0:
            return cand
    return None


def test_rapl_permission_error_says_how_to_fix() -> None:
    """Run the read as an unprivileged user (root reads anything, so drop privileges).

    Everything the child touches is copied into a directory any user can enter (the RAPL tree,
    `profiler` and `configspec_opt`), because the clone, the temporary directory and the
    interpreter may all be out of that user's reach.
    """
    import configspec_opt
    import profiler

    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) not installed: cannot drop root's privileges")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    root = _world_readable_tmpdir()
    try:
        base = rapl_tree(root)
        for p in base.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        # the kernel's mode for energy_uj is 0400 root; a non-root test user owns the file
        os.chmod(base / "intel-rapl:0/energy_uj", 0o400 if prefix else 0o000)
        lib = root / "lib"
        for pkg in (profiler, configspec_opt):
            src = Path(pkg.__file__ or "").parent
            shutil.copytree(src, lib / src.name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for p in (lib, *lib.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        python = _interpreter_for(prefix, root)
        if python is None:
            pytest.skip("no Python >= 3.10 that an unprivileged user may run on this machine")
        code = ("import sys; from pathlib import Path; from profiler.power.rapl import RaplSource\n"
                "from profiler.errors import PowerSourceError\n"
                "import profiler; assert profiler.__file__.startswith(sys.argv[1]), "
                "profiler.__file__\n"
                f"try:\n RaplSource(Path({str(root)!r})).read()\n"
                "except PowerSourceError as e:\n print(e); sys.exit(3)\n")
        res = subprocess.run([*prefix, python, "-B", "-c", code, str(lib)], capture_output=True,
                             text=True, timeout=60, cwd=root,
                             env={**os.environ, "PYTHONPATH": str(lib)})
        assert res.returncode == 3, res.stderr
        assert "permission denied" in res.stdout
        assert "chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj" in res.stdout
        assert "udev" in res.stdout
    finally:
        shutil.rmtree(root)


def test_jetson_hwmon_prefers_the_board_input_rail(tmp_path: Path) -> None:
    d = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    for n, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1200), ("VDD_CPU_GPU_CV", 5000, 400),
                                         ("VDD_SOC", 5000, 300)], 1):
        _write(d / f"in{n}_label", label + "\n")
        _write(d / f"in{n}_input", f"{mv}\n")
        _write(d / f"curr{n}_input", f"{ma}\n")
    src = JetsonSource(tmp_path)
    assert src.read().power_w == pytest.approx(6.0)
    assert src.describe()["rails_summed"] == ["VDD_IN"]
    assert src.describe()["layout"].startswith("hwmon")


def test_jetson_iio_sums_connected_rails(tmp_path: Path) -> None:
    d = tmp_path / "sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
    for n, (name, mw) in enumerate([("GPU", 1500), ("CPU", 2500), ("NC", 999)]):
        _write(d / f"rail_name_{n}", name + "\n")
        _write(d / f"in_power{n}_input", f"{mw}\n")
    src = JetsonSource(tmp_path)
    assert src.read().power_w == pytest.approx(4.0)
    assert src.describe()["rails_summed"] == ["GPU", "CPU"]
    assert src.describe()["layout"].startswith("iio")


def test_pmic_parse_sums_rails_with_current_and_voltage() -> None:
    rails = parse_pmic(PMIC_OUTPUT)
    assert set(rails) == {"3V7_WL_SW", "3V3_SYS", "1V8_SYS", "VDD_CORE"}
    assert sum(rails.values()) == pytest.approx(0.05270325 * 3.312376 + 0.16002 * 1.798047
                                                + 0.712 * 0.896904)


def test_rpi_source_runs_the_real_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "vcgencmd"
    _write(fake, "#!/bin/sh\ncat <<'EOF'\n" + PMIC_OUTPUT + "EOF\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    src = RpiPmicSource()
    assert src.read().power_w == pytest.approx(sum(parse_pmic(PMIC_OUTPUT).values()))
    assert "VDD_CORE" in src.describe()["rails_summed"]


def test_rpi_source_failing_command_is_a_clear_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "vcgencmd"
    _write(fake, "#!/bin/sh\necho 'VCHI initialization failed' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PowerSourceError, match=r"VCHI initialization failed.*video"):
        RpiPmicSource()


def test_discover_finds_nothing_on_an_empty_tree_and_says_what_it_tried(tmp_path: Path) -> None:
    src, tried = discover(tmp_path)
    if src is not None:  # a real vcgencmd or GPU on this machine
        pytest.skip(f"this machine has a real power source: {src.name}")
    assert [t.split(":")[0] for t in tried] == ["rapl", "jetson", "rpi", "nvml"]


def test_constant_and_bad_names() -> None:
    src = make_source("constant:8.5")
    assert src is not None and src.read().power_w == 8.5
    assert src.describe()["source"] == "declared"
    assert make_source("none") is None
    with pytest.raises(UsageError, match="constant:<watts>"):
        make_source("constant:-3")
    with pytest.raises(UsageError, match="unknown power source"):
        make_source("wattmeter")


def test_sampler_average_equals_energy_over_time(tmp_path: Path) -> None:
    base = rapl_tree(tmp_path, energy=0)
    src = RaplSource(tmp_path)
    stop = threading.Event()

    def burn() -> None:
        e = 0
        while not stop.is_set():
            e += 50_000  # 0.05 J per tick
            # sysfs reads are atomic; a truncate-then-write would show the sampler ""
            tmp = base / "intel-rapl:0/.energy_uj.tmp"
            tmp.write_text(f"{e}\n")
            os.replace(tmp, base / "intel-rapl:0/energy_uj")
            time.sleep(0.01)

    t = threading.Thread(target=burn)
    t.start()
    with PowerSampler(src, interval_s=0.02) as s:
        time.sleep(0.2)
    stop.set()
    t.join()
    assert s.summary is not None and s.summary.samples >= 2
    total_j = src._total_uj / 1e6  # what the counter says was spent between first and last read
    assert s.summary.mean_w * s.summary.seconds == pytest.approx(total_j, rel=1e-9)


def test_sampler_reraises_a_read_error(tmp_path: Path) -> None:
    rapl_tree(tmp_path)
    src = RaplSource(tmp_path)
    with pytest.raises(PowerSourceError), PowerSampler(src, interval_s=0.01):
        time.sleep(0.03)
        shutil.rmtree(tmp_path / "sys")
        time.sleep(0.05)
