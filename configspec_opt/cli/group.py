"""group: pools from a fleet of devices that each measured themselves (docs/grouping.md)."""

from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from configspec_opt.cli.app import app, emit_json, out, progress, require_extra, user_errors
from configspec_opt.cli.options import Bounds, JsonOpt, time_limit_option
from configspec_opt.errors import SolverUnavailableError, SpecIssue
from configspec_opt.loader import load_spec

USER_FILE_BYTES = sys.maxsize
"""The devices file is the user's own, named on the command line: read however large
(100,000 devices are ~200 MB); the service's limits guard what others send."""


class DevicesFormat(str, Enum):
    """How the devices file is written (default: by its suffix, .csv or else JSON Lines)."""

    jsonl = "jsonl"
    csv = "csv"


@app.command()
def group(
    devices: Annotated[Path, typer.Argument(
        help="Per-device measurements: JSON Lines (one push per line) or CSV (one row per "
        "device, draft, quant and target); docs/grouping.md.", show_default=False)],
    spec: Annotated[Path, typer.Option(
        "--spec", help="Base spec: targets, drafts, search, objective and constraints; a "
        "device named like a kind gives its pools memory, SLO, power and pins.",
        show_default=False)],
    tolerance: Annotated[float, typer.Option(
        help="Largest relative spread of any measured quantity within a pool (rtt: of the "
        "round it is added to), 0 to 1.", parser=Bounds(min=0, max=1))] = 0.05,
    output: Annotated[Path | None, typer.Option(
        "--out", help="Write the grouped fleet (a spec) here.")] = None,
    members: Annotated[Path | None, typer.Option(
        "--members", help="Write device,pool (CSV) here: which pool each device is in.")]
    = None,
    fmt: Annotated[DevicesFormat | None, typer.Option(
        "--format", help="jsonl or csv (default: by the file's suffix).")] = None,
    bound: Annotated[bool, typer.Option(
        "--bound/--no-bound", help="Solve the conservative and the optimistic fleet: how "
        "much the grouping can cost.")] = True,
    time_limit: Annotated[float | None, time_limit_option(
        "Seconds for each of the two solves of --bound.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Group devices into pools; the pools run on their members' worst numbers.

    Devices share a pool only if they measured the same things and every quantity
    lies within --tolerance; each pool keeps its spread (provenance.grouped of its
    profiles).  Prints how far a real device can be from its pool and, with
    --bound, the optimum of the fleet at both ends of every spread: the grouping
    costs at most their difference.  Exit 4 for an unreadable or invalid devices
    file or an output that cannot be written.
    """
    with user_errors(as_json):
        require_extra(SolverUnavailableError, "configspec group", "numpy",
                      *(("highspy", "pyomo") if bound else ()))
        report = _group(devices, spec, tolerance, output, members, fmt, bound, time_limit,
                        as_json)
    if as_json:
        emit_json(report)
    else:
        _print(report, output, members)


def _group(devices: Path, spec: Path, tolerance: float, output: Path | None,
           members: Path | None, fmt: DevicesFormat | None, bound: bool,
           time_limit: float | None, as_json: bool) -> dict[str, Any]:
    from configspec_opt.device_profiles import DevicesInputError, read_devices
    from configspec_opt.files import write_output
    from configspec_opt.grouping import (
        adjusted,
        dropped_pins,
        factors,
        fleet_text,
        group_devices,
        members_csv,
        pooled_spec,
        uncertified,
    )
    from configspec_opt.spec import Spec
    from configspec_opt.spec_files import FileRefused, read_text_file

    base = load_spec(spec).spec
    t0 = time.perf_counter()
    with progress.status(f"reading {devices} ..."):
        try:
            text = read_text_file(devices, limit=USER_FILE_BYTES)
        except FileRefused as exc:
            raise DevicesInputError([SpecIssue(str(exc), file=str(devices))]) from None
        read = read_devices(text, str(devices), base, None if fmt is None else fmt.value)
        del text
    t_read = time.perf_counter() - t0
    with progress.status(f"grouping {read.devices:,} devices ..."):
        grouping = group_devices(read, base, tolerance)
        f = factors(base, grouping)
    t_group = time.perf_counter() - t0 - t_read
    conservative = pooled_spec(base, grouping, "conservative")
    changed = adjusted(conservative, f, "conservative")
    checked = Spec.model_validate(conservative)  # what is written is a valid spec
    comments = _comments(devices, grouping, f, changed, uncertified(base))
    report: dict[str, Any] = {
        "devices": read.devices, "layouts": len(read.blocks), "pools": len(grouping.groups),
        "tolerance": tolerance, "largest_spread": grouping.spread(),
        "pool_sizes": {"min": min(g.count for g in grouping.groups),
                       "max": max(g.count for g in grouping.groups),
                       "single_device_pools": sum(g.count == 1 for g in grouping.groups)},
        "excluded_devices": len(read.excluded), "ignored": read.ignored,
        "dropped_pins": dropped_pins(base, grouping),
        "factors": {"round_time": f.round_time, "goodput": f.goodput, "energy": f.energy},
        "adjusted_limits": changed, "read_s": t_read, "group_s": t_group,
    }
    if output is not None:
        with progress.status(f"writing {output} ..."):
            write_output(output, fleet_text(conservative, comments), shown=output)
        report["out"] = str(output)
    if members is not None:
        write_output(members, members_csv(grouping), shown=members)
        report["members"] = str(members)
    report["bound"] = None
    why = uncertified(base)
    report["uncertified"] = why
    if bound and not why:
        from configspec_opt.group_bound import grouping_bound
        from configspec_opt.grouping import real_value

        optimistic = pooled_spec(base, grouping, "optimistic", spread=False)
        adjusted(optimistic, f, "optimistic")
        with progress.status(f"solving {len(grouping.groups):,} pools at both ends of "
                             "every spread ..."):
            metric = base.objective.terms()[0].metric
            b = grouping_bound(checked, Spec.model_validate(optimistic), time_limit=time_limit,
                               real=lambda plan: real_value(base, grouping, plan, metric))
        report["bound"] = b.to_dict()
    report["total_s"] = time.perf_counter() - t0
    return report


def _comments(devices: Path, grouping: Any, f: Any, changed: list[str], why: list[str]
              ) -> list[str]:
    n = sum(g.count for g in grouping.groups)
    lines = [
        f"configspec group: {n:,} devices of {devices.name} in {len(grouping.groups):,} "
        f"pools, tolerance {grouping.tolerance:g} (largest spread {grouping.spread():.2%}).",
        "Each pool runs on its members' worst numbers (slowest draft_tok_s, lowest alpha,",
        "highest power_w, longest rtt_s): a plan for it meets every per-device SLO on every",
        "device. provenance.grouped of each profile keeps the pool's size, its rtt range",
        "and the other end of every spread (docs/grouping.md).",
        f"A real device's round is at most {f.round_time - 1:.2%} shorter and its goodput "
        f"{f.goodput - 1:.2%} higher than its pool's.",
    ]
    if changed:
        lines.append("Limits tightened by that spread, so that they hold for the real devices:")
        lines.extend(f"  {c}" for c in changed)
    lines.extend(f"Not certified: {w}." for w in why)
    return lines


def _print(report: dict[str, Any], output: Path | None, members: Path | None) -> None:
    sizes = report["pool_sizes"]
    out.print(f"grouped {report['devices']:,} devices ({report['layouts']} layouts) into "
              f"{report['pools']:,} pools in {report['read_s'] + report['group_s']:.1f} s "
              f"(reading {report['read_s']:.1f} s); tolerance {report['tolerance']:g}, largest "
              f"spread {report['largest_spread']:.2%}; pools of {sizes['min']:,} to "
              f"{sizes['max']:,} devices, {sizes['single_device_pools']:,} of one", soft_wrap=True)
    if report["excluded_devices"]:
        out.print(f"left out {report['excluded_devices']:,} devices without a measurement the "
                  "base spec can use", soft_wrap=True)
    for why, n in sorted(report["ignored"].items()):
        out.print(f"ignored {n:,} x {why}", soft_wrap=True)
    if report["dropped_pins"]:
        out.print(f"pins on {', '.join(report['dropped_pins'])} pin nothing: no device of "
                  "that kind", soft_wrap=True)
    f = report["factors"]
    out.print(f"any plan: a real device's goodput is 0 to {f['goodput'] - 1:.2%} above its "
              f"pool's, its round 0 to {f['round_time'] - 1:.2%} shorter, its energy per token "
              f"0 to {1 - 1 / f['energy']:.2%} lower", soft_wrap=True)
    for c in report["adjusted_limits"]:
        out.print(f"tightened for the real devices: {c}", soft_wrap=True)
    if output is not None:
        out.print(f"wrote {output}", soft_wrap=True)
    if members is not None:
        out.print(f"wrote {members}", soft_wrap=True)
    for why in report["uncertified"]:
        out.print(f"no bound: {why}", soft_wrap=True)
    b = report["bound"]
    if b is not None:
        values = (f"plan {b['conservative']:.6g} on the pools, {b['devices']:.6g} on the "
                  f"devices; no plan beats {b['optimistic']:.6g}" if b["optimistic"] is not None
                  and b["devices"] is not None else
                  f"conservative {b['status']['conservative']}, optimistic "
                  f"{b['status']['optimistic']}")
        out.print(f"bound ({b['sense']} {b['metric']}, solved in {b['time_s']:.1f} s): "
                  f"{values}: {b['message']}", soft_wrap=True)
