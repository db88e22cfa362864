"""Raspberry Pi 5 power from the PMIC: `vcgencmd pmic_read_adc`, sum of rails.

The command prints each rail's current (`NAME_A current(n)=0.123A`) and
voltage (`NAME_V volt(n)=0.850V`); power is the sum over rails having both.
The PMIC does not see the 5 V input's own losses, so this is a lower bound
of wall power; the provenance says which rails were summed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import Any

from profiler.errors import PowerSourceError
from profiler.power.base import Reading

DEFAULT_COMMAND = ("vcgencmd", "pmic_read_adc")
_LINE = re.compile(r"^\s*(\S+)_([AV])\s+\w+\(\d+\)=([-+0-9.eE]+)[AV]\s*$")


def parse_pmic(text: str) -> dict[str, float]:
    """Rail name -> watts, from the command's output."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    return {r: amps[r] * volts[r] for r in sorted(amps) if r in volts}


class RpiPmicSource:
    """A `PowerSource` over the Raspberry Pi 5 PMIC's rails, via `vcgencmd pmic_read_adc`.

    Raises PowerSourceError when the command is missing or reports no usable rail.
    """

    name = "rpi-pmic"

    def __init__(self, command: tuple[str, ...] = DEFAULT_COMMAND) -> None:
        if shutil.which(command[0]) is None:
            raise PowerSourceError(f"'{command[0]}' not found (not a Raspberry Pi 5?)")
        self.command = command
        self.rails = sorted(self._rails())
        if not self.rails:
            raise PowerSourceError(f"'{' '.join(command)}' printed no rails with both current "
                                   "and voltage (firmware too old for pmic_read_adc?)")

    def _rails(self) -> dict[str, float]:
        try:
            res = subprocess.run(self.command, capture_output=True, text=True, timeout=5,
                                 check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PowerSourceError(f"cannot run {' '.join(self.command)}: {exc}") from None
        if res.returncode != 0:
            raise PowerSourceError(f"{' '.join(self.command)} failed: {res.stderr.strip()} "
                                   "(is the user in the 'video' group?)")
        return parse_pmic(res.stdout)

    def read(self) -> Reading:
        """Instantaneous power in W: current x voltage summed over the rails (one command run)."""
        return Reading(time.perf_counter(), power_w=sum(self._rails().values()))

    def describe(self) -> dict[str, Any]:
        """Provenance: the command run and the rails summed."""
        return {"source": "rpi-pmic", "command": " ".join(self.command),
                "rails_summed": self.rails}
