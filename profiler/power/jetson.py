"""NVIDIA Jetson INA3221 power monitors, in both sysfs layouts.

JetPack 5/6 (hwmon): `/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/` with
`inN_label`, `inN_input` (mV) and `currN_input` (mA).  JetPack 4 (iio):
`/sys/bus/i2c/drivers/ina3221x/*/iio:device*/` with `rail_name_N` and
`in_powerN_input` (mW).  A board-input rail (VDD_IN, POM_5V_IN) already is
the whole module's power, so when one exists it is used alone; otherwise
every connected rail is summed ("NC" channels are skipped).  The rails used
are recorded so a reader knows what "P" means on that board.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.errors import PowerSourceError
from profiler.power.base import Reading

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0_TOTAL")
HWMON_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel and the sysfs files its power is read from."""

    name: str
    files: tuple[Path, ...]  # hwmon: (mV, mA); iio: (mW,)

    def watts(self) -> float:
        """Power on this rail now, in W; PowerSourceError when the files cannot be read."""
        try:
            vals = [float(f.read_text().strip()) for f in self.files]
        except PermissionError:
            raise PowerSourceError(f"permission denied reading {self.files[0]} "
                                   "(run as root or add the user to the i2c group)") from None
        except (OSError, ValueError) as exc:
            raise PowerSourceError(f"cannot read rail {self.name}: {exc}") from None
        return vals[0] * vals[1] / 1e6 if len(vals) == 2 else vals[0] / 1e3


def _hwmon_rails(root: Path) -> list[Rail]:
    rails = []
    for d in sorted(root.glob(HWMON_GLOB)):
        for label in sorted(d.glob("in*_label")):
            n = label.name[2:-6]
            name = label.read_text().strip()
            mv, ma = d / f"in{n}_input", d / f"curr{n}_input"
            if mv.exists() and ma.exists():
                rails.append(Rail(name, (mv, ma)))
    return rails


def _iio_rails(root: Path) -> list[Rail]:
    rails = []
    for d in sorted(root.glob(IIO_GLOB)):
        for label in sorted(d.glob("rail_name_*")):
            n = label.name.rsplit("_", 1)[1]
            mw = d / f"in_power{n}_input"
            if mw.exists():
                rails.append(Rail(label.read_text().strip(), (mw,)))
    return rails


class JetsonSource:
    """A `PowerSource` over a Jetson's INA3221 rails (instantaneous W); see the module docstring.

    Raises PowerSourceError when no rails are found (not a Jetson).
    """

    name = "jetson"

    def __init__(self, root: Path = Path("/")) -> None:
        hw = _hwmon_rails(root)
        self.layout = "hwmon (JetPack 5/6)" if hw else "iio (JetPack 4)"
        rails = [r for r in (hw or _iio_rails(root)) if r.name.upper() != "NC"]
        if not rails:
            raise PowerSourceError("no INA3221 rails found (not a Jetson?)")
        total = [r for r in rails if r.name.upper() in TOTAL_RAILS]
        self.rails = total[:1] or rails
        self.all_rails = [r.name for r in rails]

    def read(self) -> Reading:
        """Instantaneous power of the rails used (the board-input rail, else the sum of all)."""
        return Reading(time.perf_counter(), power_w=sum(r.watts() for r in self.rails))

    def describe(self) -> dict[str, Any]:
        """Provenance: the sysfs layout, the rails summed and every rail found."""
        return {"source": "jetson-ina3221", "layout": self.layout,
                "rails_summed": [r.name for r in self.rails], "rails_found": self.all_rails}
