"""`configspec serve` as a real process: drive it over HTTP, SIGKILL it, restart it.

Everything a client saw acknowledged with 2xx (a job, pushed profiles) must
be there after the process is killed without any chance to clean up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import EXAMPLE, YAML_CT
from tests.api.live import LiveServer
from tests.api.test_profiles import FAST_ORIN


def poll_job(base: str, location: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(base + location).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{location} did not finish")


def test_kill_and_restart_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "e2e.sqlite3"
    log = tmp_path / "server.log"
    spec = EXAMPLE.read_text()
    server = LiveServer(db, log)
    try:
        base = server.url
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        solved = httpx.post(f"{base}/v1/solve", content=spec, headers=YAML_CT, timeout=60)
        assert solved.status_code == 200
        assert solved.json()["status"] == "optimal"
        pushed = httpx.post(f"{base}/v1/profiles", json={"profiles": [FAST_ORIN]})
        assert pushed.status_code == 201
        # a job with a spec whose solve takes a while, so it is queued or running when killed
        submitted = httpx.post(f"{base}/v1/jobs?objective=min:cost", content=spec,
                               headers=YAML_CT)
        assert submitted.status_code == 202
        location = submitted.headers["location"]
    finally:
        server.kill()
    assert server.proc.returncode == -9

    with LiveServer(db, log) as again:
        base = again.url
        job = poll_job(base, location)
        assert job["status"] == "succeeded", job
        assert job["result"]["objective"]["metric"] == "cost"
        profiles = httpx.get(f"{base}/v1/profiles?device=orin").json()["profiles"]
        assert [p["profile"]["draft_tok_s"] for p in profiles] == [400.0]
        assert httpx.get(f"{base}{solved.headers['content-location']}").status_code == 200
        again.stop()
    # uvicorn re-raises SIGTERM after its graceful shutdown
    assert again.proc.returncode in (0, -15)
    assert "Traceback" not in log.read_text()


def test_server_refuses_remote_without_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("configspec"))
    r = subprocess.run([exe, "serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in r.stderr
    assert not (tmp_path / "x.db").exists()
