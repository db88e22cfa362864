"""`Idempotency-Key` on profile uploads: a device that retries stores its profiles once.

Runs against SQLite and PostgreSQL (tests/conftest.py).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from configspec_opt.store import repo
from configspec_opt.store.database import Database
from configspec_opt.store.models import utcnow
from configspec_opt.store.retention import prune
from tests.api.conftest import MakeClient
from tests.api.helpers import assert_problem

ENTRY = {"device": "edge-1", "draft": "d", "quant": "q", "draft_tok_s": 12.5}


def test_a_retry_gets_the_first_answer_and_stores_nothing(make_client: MakeClient,
                                                          db_url: str) -> None:
    with make_client(db=db_url) as c:
        headers = {"Idempotency-Key": "8c1f0f0e-upload-1"}
        first = c.post("/v1/profiles", json={"profiles": [ENTRY]}, headers=headers)
        assert first.status_code == 201 and "idempotent-replayed" not in first.headers
        again = c.post("/v1/profiles", json={"profiles": [ENTRY]}, headers=headers)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        history = c.get("/v1/profiles?history=true").json()["profiles"]
        assert [p["id"] for p in history] == [first.json()["profiles"][0]["id"]]
        other = c.post("/v1/profiles", json={"profiles": [{**ENTRY, "draft_tok_s": 1.0}]},
                       headers=headers)
        assert "another body" in assert_problem(other, 409, "idempotency-key-reused")["detail"]
        without = c.post("/v1/profiles", json={"profiles": [ENTRY]})
        assert without.status_code == 201  # no key: every upload appends
        assert len(c.get("/v1/profiles?history=true").json()["profiles"]) == 2


def test_bad_keys_are_422(make_client: MakeClient) -> None:
    with make_client() as c:
        for key in (b"has space", b"x" * 201, "caf\u00e9".encode()):
            r = c.post("/v1/profiles", json={"profiles": [ENTRY]},
                       headers={"Idempotency-Key": key})  # type: ignore[dict-item, arg-type, unused-ignore]
            assert_problem(r, 422, "invalid-request")
        assert c.get("/v1/profiles").json()["profiles"] == []


def test_a_concurrent_first_use_waits_for_the_other(db_url: str) -> None:
    """Two replicas get the same key at once: the second waits for the first's commit and
    then sees its answer (PostgreSQL: the unique key's row lock; SQLite: the write lock)."""
    db = Database(db_url)
    db.migrate()
    reserved = threading.Event()
    seen: list[object] = []

    def first() -> None:
        with db.transaction() as s:
            assert repo.remember_response(s, "", "k", "a" * 64)
            reserved.set()
            time.sleep(0.5)
            repo.store_response(s, "", "k", 201, {"profiles": ["first"]})

    def second() -> None:
        reserved.wait(10)
        with db.transaction() as s:
            won = repo.remember_response(s, "", "k", "a" * 64)
            row = repo.get_remembered(s, "", "k")
            seen.append((won, row.response if row else None))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    db.close()
    assert seen == [(False, {"profiles": ["first"]})]


def test_old_keys_are_pruned_with_old_jobs(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    with db.transaction() as s:
        assert repo.remember_response(s, "", "old", "a" * 64)
    with db.transaction() as s:
        kept = prune(s, older_than_days=1, keep=None)
        assert kept.idempotency_keys == 0
        gone = prune(s, older_than_days=1, keep=None, now=utcnow() + timedelta(days=2))
        assert gone.idempotency_keys == 1 and gone
    with db.transaction() as s:
        assert repo.get_remembered(s, "", "old") is None
    db.close()
