"""Linux RAPL energy counters (Intel, and AMD through the same powercap files).

Sums the package domains (`intel-rapl:N`, name `package-N`) plus their
`dram` sub-domains, which packages do not include; core/uncore sub-domains
are parts of the package and would be counted twice.  Counters wrap at
`max_energy_range_uj`.  Since Linux 5.10 (CVE-2020-8694, "Platypus")
`energy_uj` is readable by root only, hence the long permission message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.errors import PowerSourceError
from profiler.power.base import Reading, counter_delta

POWERCAP = Path("sys/class/powercap")

PERMISSION_HINT = (
    "RAPL energy counters are readable by root only since Linux 5.10. Grant read access "
    "until reboot with: sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj ; or permanently with a udev rule "
    "(/etc/udev/rules.d/90-rapl.rules): "
    'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod a+r /sys%p/energy_uj" ; '
    "or run the profiler as root, or choose --power none"
)


@dataclass(frozen=True)
class Domain:
    """One RAPL domain's energy counter (µJ) and the value it wraps at."""

    name: str
    energy: Path
    max_range: int


def find_domains(root: Path = Path("/")) -> list[Domain]:
    """The package domains and their DRAM sub-domains under `root` (the sysfs root).

    Other sub-domains (core, uncore) are left out: the package already counts them.
    """
    base = root / POWERCAP
    domains: list[Domain] = []
    for d in sorted(base.glob("intel-rapl:*")):
        depth = d.name.count(":")
        name = _read_text(d / "name")
        if name is None or not (d / "energy_uj").exists():
            continue
        top = depth == 1 and name.startswith("package")
        dram = depth == 2 and name == "dram"
        if top or dram:
            rng = _read_text(d / "max_energy_range_uj")
            domains.append(Domain(f"{d.name} ({name})", d / "energy_uj",
                                  int(rng) if rng and rng.isdigit() else 2**32))
    return domains


def _read_text(p: Path) -> str | None:
    try:
        return p.read_text().strip()
    except OSError:
        return None


class RaplSource:
    """A `PowerSource` over Intel/AMD RAPL energy counters in sysfs (package + DRAM).

    Raises PowerSourceError when there are no domains; reading them often needs
    root or a udev rule (the error says how).
    """

    name = "rapl"

    def __init__(self, root: Path = Path("/")) -> None:
        self.domains = find_domains(root)
        if not self.domains:
            raise PowerSourceError(f"no RAPL package domains under {root / POWERCAP}")
        self._last: list[int] | None = None
        self._total_uj = 0

    def _raw(self) -> list[int]:
        out = []
        for d in self.domains:
            try:
                out.append(int(d.energy.read_text().strip()))
            except PermissionError:
                raise PowerSourceError(f"permission denied reading {d.energy}. "
                                       + PERMISSION_HINT) from None
            except (OSError, ValueError) as exc:
                raise PowerSourceError(f"cannot read {d.energy}: {exc}") from None
        return out

    def read(self) -> Reading:
        """Energy in J since this source's first read, with each domain's wrap-around undone."""
        now = self._raw()
        t = time.perf_counter()
        if self._last is not None:
            self._total_uj += sum(counter_delta(a, b, d.max_range)
                                  for a, b, d in zip(self._last, now, self.domains, strict=True))
        self._last = now
        return Reading(t, energy_j=self._total_uj / 1e6)

    def describe(self) -> dict[str, Any]:
        """Provenance: the domains summed."""
        return {"source": "rapl", "domains": [d.name for d in self.domains],
                "summed": "package domains + dram sub-domains"}
