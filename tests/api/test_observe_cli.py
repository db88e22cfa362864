"""`configspec observe FILE`: the same reports, rules and store as POST /v1/observations.

Files are refused with their line and column (exit 4) and store nothing; with --lock
the drift report of the example fleet, with --replan the proposal in `configspec diff`
form, the lock and spec untouched; what the CLI stores, a server on the same database
reads (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from configspec_opt.store import observations as stored
from configspec_opt.store.database import Database
from tests.api.conftest import MakeClient
from tests.api.drift_data import ALPHA, ORIN, RPI5, copy_example, reports
from tests.cli_helpers import invoke


def write(path: Path, observations: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"observations": observations}, indent=1))
    return path


def last_scrapes(observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each reporter's newest report: sent again, it adds nothing (an older one is refused)."""
    return list({o["source"]: o for o in observations}.values())


def stored_reports(url: str) -> int:
    db = Database(url)
    try:
        db.migrate()
        return sum(o.reports for _, o in db.call(stored.totals))
    finally:
        db.close()


def test_observe_stores_and_refuses_like_the_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'obs.sqlite3'}"
    batch = reports(RPI5, 0.5, n=30, sources=1, per_source=2)
    good = write(tmp_path / "good.json", batch)
    run = invoke("observe", good, "--db", url)
    assert run.exit_code == 0, run.stderr
    assert "stored 2 observation(s) of 1 configuration(s)" in run.stdout
    run = invoke("observe", good, "--db", url, "--json")  # its first scrape is behind now
    assert run.exit_code == 4
    assert json.loads(run.stdout)["errors"][0]["path"] == "observations[0].spec_decode.num_drafts"
    again = write(tmp_path / "again.json", last_scrapes(batch))
    run = invoke("observe", again, "--db", url, "--json")
    assert json.loads(run.stdout)["stored"] == 1
    assert stored_reports(url) == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("observations:\n  - source: a\n    device: rpi5\n    target: t\n"
                   "    draft: d\n    quant: q\n    k: 6\n    rtt_s: -1\n")
    run = invoke("observe", bad, "--db", url)
    assert run.exit_code == 4, run.stdout + run.stderr
    assert "bad.yaml:8:" in run.stderr and "observations[0].rtt_s" in run.stderr
    backwards = write(tmp_path / "back.json", [
        {**r, "spec_decode": {**r["spec_decode"], "num_drafts": 1}}
        for r in reports(RPI5, 0.5, n=30, sources=1, per_source=1)])
    run = invoke("observe", backwards, "--db", url)
    assert run.exit_code == 4
    assert "went backwards" in run.stderr and "back.json:" in run.stderr
    run = invoke("observe", tmp_path, "--db", url)  # a directory is no file
    assert run.exit_code == 4
    assert stored_reports(url) == 3  # nothing of the refused files
    assert invoke("observe", again, "--db", url, "--replan").exit_code == 2


def test_observe_finds_drift_and_proposes_a_replan(tmp_path: Path) -> None:
    lock = copy_example(tmp_path / "fleet")
    before = lock.read_bytes()
    url = f"sqlite:///{tmp_path / 'obs.sqlite3'}"
    orin = reports(ORIN, ALPHA["orin"])
    fine = write(tmp_path / "fine.json", orin)
    run = invoke("observe", fine, "--db", url, "--lock", lock, "--exit-code")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "drifted: none" in run.stdout
    worse = write(tmp_path / "worse.json", reports(RPI5, 0.40))
    run = invoke("observe", worse, "--db", url, "--lock", lock, "--json")
    assert run.exit_code == 0
    drift = json.loads(run.stdout)["drift"]
    assert drift["drifted"] == ["rpi5"]
    # the same counters again add nothing; the window still holds rpi5's drop
    same = write(tmp_path / "same.json", last_scrapes(orin))
    run = invoke("observe", same, "--db", url, "--lock", lock, "--replan", "--exit-code")
    assert run.exit_code == 1, run.stdout + run.stderr
    assert "proposed re-plan (not applied)" in run.stdout
    assert "rpi5: acceptance of llama-3.2-1b-instruct Q4_K_M" in run.stdout
    lines = [line for line in run.stdout.splitlines() if "rpi5:" in line]
    assert any(word in line for line in lines for word in ("configuration", "metrics"))
    assert lock.read_bytes() == before


def test_the_cli_and_the_server_share_the_store(tmp_path: Path, db_url: str,
                                                make_client: MakeClient) -> None:
    lock = copy_example(tmp_path / "fleet")
    worse = write(tmp_path / "worse.json", reports(RPI5, 0.40))
    assert invoke("observe", worse, "--db", db_url).exit_code == 0
    with make_client(db=db_url, watch_lock=str(lock)) as c:
        assert c.get("/v1/drift").json()["drifted"] == ["rpi5"]
        # the server refuses what follows the CLI's counters backwards
        first = reports(RPI5, 0.40)[0]
        r = c.post("/v1/observations", json={"observations": [first]})
        assert r.status_code == 422 and "went backwards" in r.text


def test_serve_refuses_a_lock_it_cannot_watch(tmp_path: Path) -> None:
    """Before it listens: a missing spec, a file that is no lock, a name without .lock."""
    db = tmp_path / "s.sqlite3"
    lock = copy_example(tmp_path / "fleet")
    lock.with_name("llama70b-edge.yaml").unlink()
    run = invoke("serve", "--watch", lock, "--db", db, "--port", "1")
    assert run.exit_code == 2 and "no such file" in run.stderr
    other = copy_example(tmp_path / "other")
    other.write_text("x: 1\n")
    run = invoke("serve", "--watch", other, "--db", db, "--port", "1")
    assert run.exit_code == 2 and "not a configspec lock" in run.stderr
    run = invoke("serve", "--watch", other.with_name("llama70b-edge.yaml"), "--db", db)
    assert run.exit_code == 2 and "ends in .lock" in run.stderr
    assert not db.exists()
