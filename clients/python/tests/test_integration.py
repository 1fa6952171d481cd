"""The client against real Padlock processes (`padlock serve` twice on one SQLite store,
maxStalenessSeconds 2). Batch-gets are counted by the servers' own /metrics."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from padlock_client import (
    BatchOptions,
    CacheOptions,
    DecryptionFailed,
    EndpointGroup,
    InvalidInput,
    KeychainNotFound,
    KeychainShredded,
    LegalHold,
    PadlockClient,
    PadlockClientOptions,
    PermissionDenied,
    Unavailable,
    read_envelope_header,
)

from .padlock_processes import Deployment, PadlockProcess, batch_get_count

USERS = [f"user-{i:04d}" for i in range(600)]


def make(deployment: Deployment, *urls: str, service: str = "app", **options: object) -> PadlockClient:
    groups = tuple(EndpointGroup(f"group-{i}", (url,)) for i, url in enumerate(urls))
    settings: dict[str, object] = {"timeout_ms": 10_000, "deadline_ms": 20_000}
    settings.update(options)
    return PadlockClient(PadlockClientOptions(groups=groups, credential=deployment.credentials[service], **settings))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def users(deployment: Deployment, primary: PadlockProcess) -> list[str]:
    with make(deployment, primary.url) as admin, ThreadPoolExecutor(8) as pool:
        created = list(pool.map(admin.create_keychain, USERS))
    assert created.count(True) == len(USERS)
    return USERS


@pytest.fixture()
def app(deployment: Deployment, primary: PadlockProcess, mirror: PadlockProcess) -> Iterator[PadlockClient]:
    with make(deployment, primary.url, mirror.url) as client:
        yield client


def test_round_trip_and_across_groups(
    deployment: Deployment, primary: PadlockProcess, mirror: PadlockProcess, users: list[str]
) -> None:
    with make(deployment, primary.url) as via_primary, make(deployment, mirror.url) as via_mirror:
        sealed = via_primary.encrypt(users[1], "payments", "4111 1111 1111 1111")
        assert read_envelope_header(sealed) is not None
        assert len(sealed) == len("4111 1111 1111 1111") + 34 + len("payments")
        assert via_mirror.decrypt_text(users[1], sealed) == "4111 1111 1111 1111"
        assert via_primary.decrypt(users[1], via_primary.encrypt(users[1], "profile", b"\x00\xff")) == b"\x00\xff"


def test_a_flipped_byte_fails_and_so_does_another_users_envelope(app: PadlockClient, users: list[str]) -> None:
    sealed = app.encrypt(users[2], "profile", "secret")
    for i in (0, 1, 5, len(sealed) // 2, len(sealed) - 1):
        flipped = bytearray(sealed)
        flipped[i] ^= 0x80
        with pytest.raises(DecryptionFailed):
            app.decrypt(users[2], bytes(flipped))
    with pytest.raises(DecryptionFailed):
        app.decrypt(users[3], sealed)


def test_concurrent_lookups_of_one_user_cost_one_batch_get(
    deployment: Deployment, primary: PadlockProcess, users: list[str]
) -> None:
    # A user no server has cached: the answer's maxAgeSeconds is then 1 (2 s less the rows' age, rounded
    # down), so threads that come after the batch find the keys cached. An older server copy could give 0.
    fresh = "coalesce-one"
    with make(deployment, primary.url) as admin:
        admin.create_keychain(fresh)
    with make(deployment, primary.url) as client:
        before = batch_get_count(primary)
        start = threading.Barrier(32)

        def work(i: int) -> bytes:
            start.wait()
            return client.encrypt(fresh, "profile", f"record {i}")

        with ThreadPoolExecutor(32) as pool:
            sealed = list(pool.map(work, range(32)))
        assert batch_get_count(primary) - before == 1
        assert client.stats()["batches"] == 1
        assert client.decrypt_text(fresh, sealed[31]) == "record 31"


def test_many_threads_many_users_are_coalesced(
    deployment: Deployment, primary: PadlockProcess, users: list[str]
) -> None:
    with make(deployment, primary.url, batch=BatchOptions(max_in_flight=1)) as client:
        before = batch_get_count(primary)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda u: client.encrypt(u, "profile", "x"), users[:320]))
        batches = batch_get_count(primary) - before
        # One batch in flight at a time: the lookups of the other 15 threads leave together.
        assert batches < 320 / 4, f"{batches} batch-gets for 320 users"
        assert client.stats()["batches"] == batches


def test_decrypt_many_is_one_batch_get_per_chunk_of_users(
    deployment: Deployment, primary: PadlockProcess, users: list[str]
) -> None:
    with make(deployment, primary.url) as writer:
        records = [(u, writer.encrypt(u, "profile", f"row of {u}")) for u in users]
    with make(deployment, primary.url, cache=None) as reader:
        before = batch_get_count(primary)
        results = reader.decrypt_many(records + records[:10])
        assert batch_get_count(primary) - before == 2  # 600 distinct users, 500 per batch-get
        assert [r.plaintext for r in results[:600]] == [f"row of {u}".encode() for u in users]
        assert results[600].plaintext == b"row of user-0000"


def test_decrypt_many_reports_each_record_alone(deployment: Deployment, app: PadlockClient, users: list[str]) -> None:
    gone = "bulk-gone"
    app.create_keychain(gone)
    gone_sealed = app.encrypt(gone, "profile", "bye")
    app.shred_keychain(gone)
    good = app.encrypt(users[20], "profile", "hi")
    results = app.decrypt_many(
        [(users[20], good), (gone, gone_sealed), ("nobody-bulk", good), (users[20], good[:-1]), (users[21], good)]
    )
    assert results[0].plaintext == b"hi"
    assert [r.error.code if r.error else None for r in results[1:]] == [
        "KEYCHAIN_SHREDDED",
        "KEYCHAIN_NOT_FOUND",
        "DECRYPTION_FAILED",
        "DECRYPTION_FAILED",
    ]
    with pytest.raises(InvalidInput):
        app.decrypt_many([("bad user!", good)])


def test_shredded_is_not_not_found(
    deployment: Deployment, primary: PadlockProcess, mirror: PadlockProcess, app: PadlockClient
) -> None:
    user = "shred-me"
    app.create_keychain(user)
    sealed = app.encrypt(user, "profile", "alice's data")
    with make(deployment, mirror.url) as other:
        assert other.decrypt_text(user, sealed) == "alice's data"  # cached by the other client
        outcome = app.shred_keychain(user)
        assert outcome.shredded == 3
        with pytest.raises(KeychainShredded):
            app.decrypt(user, sealed)
        with pytest.raises(KeychainShredded):
            app.encrypt(user, "profile", "more")
        claims = app.verify_receipt(outcome.receipt_jws)
        assert claims.sub == user and claims.scope == "keychain" and claims.jti == outcome.receipt_id
        # The other client and the mirror's cache may hold the keys for at most maxStalenessSeconds.
        deadline = time.monotonic() + deployment.max_staleness_seconds + 1.5
        while True:
            try:
                other.decrypt(user, sealed)
            except KeychainShredded:
                break
            assert time.monotonic() < deadline, "still decrypting after the deletion bound"
            time.sleep(0.1)
    with pytest.raises(KeychainNotFound):
        app.encrypt("never-created", "profile", "x")


def test_shred_category_keeps_the_others(app: PadlockClient) -> None:
    user = "opt-out"
    app.create_keychain(user)
    ads = app.encrypt(user, "advertising", "segment 7")
    profile = app.encrypt(user, "profile", "name")
    outcome = app.shred_category(user, "advertising")
    assert outcome.shredded == 1
    with pytest.raises(KeychainShredded) as raised:
        app.decrypt(user, ads)
    assert raised.value.category == "advertising"
    assert app.decrypt_text(user, profile) == "name"
    assert app.verify_receipt(outcome.receipt_jws).scope == "category"


def test_rotation(app: PadlockClient) -> None:
    user = "rotated"
    app.create_keychain(user)
    old = app.encrypt(user, "profile", "v1 data")
    assert app.rotate_category(user, "profile") == 2
    new = app.encrypt(user, "profile", "v2 data")
    assert read_envelope_header(new).version == 2  # type: ignore[union-attr]
    assert app.decrypt_text(user, old) == "v1 data"


def test_holds_and_schedules(app: PadlockClient) -> None:
    user = "held"
    app.create_keychain(user)
    hold = app.place_hold(user, "case 2026-114")
    assert hold.state == "in_force" and hold.verified
    with pytest.raises(LegalHold):
        app.shred_keychain(user)
    schedule = app.schedule_shred(user, grace_seconds=3600, serve_during_grace=True, category="payments")
    assert schedule.state == "pending" and schedule.category == "payments"
    status = app.lifecycle_status(user)
    assert [h.hold_id for h in status.holds] == [hold.hold_id]
    assert [s.schedule_id for s in status.schedules] == [schedule.schedule_id]
    assert app.cancel_scheduled_shred(user, schedule.schedule_id).state == "cancelled"
    assert app.get_scheduled_shred(user, schedule.schedule_id).state == "cancelled"
    assert app.release_hold(user, hold.hold_id).state == "released"
    assert app.shred_keychain(user).shredded == 3


def test_refusals(deployment: Deployment, primary: PadlockProcess, users: list[str]) -> None:
    with make(deployment, primary.url, service="reader") as reader, make(deployment, primary.url) as app:
        with pytest.raises(PermissionDenied):
            reader.encrypt(users[5], "payments", "x")
        with pytest.raises(PermissionDenied):
            reader.create_keychain("reader-made")
        # Another service's keys for the same user and category are unrelated.
        with pytest.raises(DecryptionFailed):
            app.decrypt(users[5], reader.encrypt(users[5], "profile", "mine"))
    wrong = PadlockClient(
        PadlockClientOptions(groups=(EndpointGroup("p", (primary.url,)),), credential="app.not-a-real.credential")
    )
    with wrong, pytest.raises(PermissionDenied) as raised:
        wrong.encrypt(users[5], "profile", "x")
    assert raised.value.server_code == "UNAUTHENTICATED"
    assert "not-a-real" not in str(raised.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_failover_to_the_second_group_when_the_first_is_down(
    deployment: Deployment, mirror: PadlockProcess, users: list[str]
) -> None:
    doomed = deployment.start("doomed")
    with make(deployment, doomed.url, mirror.url, cache=None, down_ms=60_000) as client:
        sealed = client.encrypt(users[30], "profile", "via the first group")
        assert client.stats()["failovers"] == 0
        doomed.kill()
        assert client.decrypt_text(users[30], sealed) == "via the first group"
        assert client.stats()["failovers"] == 1
        # The dead group is now tried last: the next call goes straight to the mirror.
        client.decrypt(users[30], sealed)
        assert client.stats()["failovers"] == 1
    with make(deployment, f"http://127.0.0.1:{_closed_port()}") as nowhere, pytest.raises(Unavailable) as raised:
        nowhere.encrypt(users[30], "profile", "x")
    assert raised.value.attempts and raised.value.attempts[0].reason == "CONNECTION_REFUSED"


def test_timeout_on_a_server_that_does_not_answer(
    deployment: Deployment, mirror: PadlockProcess, users: list[str]
) -> None:
    # A listening socket that never accepts: connections complete in the backlog, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with make(deployment, url, timeout_ms=300, deadline_ms=1000) as client:
            started = time.monotonic()
            with pytest.raises(Unavailable) as raised:
                client.encrypt(users[31], "profile", "x")
            elapsed = time.monotonic() - started
            assert [a.reason for a in raised.value.attempts] == ["TIMEOUT"]
            assert 0.25 < elapsed < 2.0
        # With a second group, the silent one costs one timeout and the call succeeds.
        with make(deployment, url, mirror.url, timeout_ms=300, deadline_ms=5000) as client:
            assert client.decrypt_text(users[31], client.encrypt(users[31], "profile", "ok")) == "ok"
        # The deadline bounds the whole call, whatever the per-attempt timeout.
        with make(deployment, url, url, timeout_ms=400, deadline_ms=500) as client:
            started = time.monotonic()
            with pytest.raises(Unavailable):
                client.encrypt(users[31], "profile", "x")
            assert time.monotonic() - started < 1.5


def test_cache_respects_its_cap(deployment: Deployment, primary: PadlockProcess, users: list[str]) -> None:
    with make(deployment, primary.url) as admin:
        admin.create_keychain("cache-cap")  # never read before: maxAgeSeconds 1 (see above)
    with make(deployment, primary.url, cache=CacheOptions(max_ttl_ms=200)) as client:
        client.encrypt("cache-cap", "profile", "x")
        client.encrypt("cache-cap", "profile", "x")
        assert client.stats()["batches"] == 1
        time.sleep(0.3)
        client.encrypt("cache-cap", "profile", "x")
        assert client.stats()["batches"] == 2
        client.forget("cache-cap")
        client.encrypt("cache-cap", "profile", "x")
        assert client.stats()["batches"] == 3


def test_closed_client_and_bad_input(
    app: PadlockClient, deployment: Deployment, primary: PadlockProcess, users: list[str]
) -> None:
    for bad in ("", "-starts-with-dash", "a" * 129, "user\n", "ünïcode"):
        with pytest.raises(InvalidInput):
            app.encrypt(bad, "profile", "x")
    with pytest.raises(InvalidInput):
        app.encrypt(users[0], "Bad Category", "x")
    with pytest.raises(InvalidInput):
        app.encrypt(users[0], "profile", 42)  # type: ignore[arg-type]
    client = make(deployment, primary.url)
    sealed = client.encrypt(users[0], "profile", "x")
    client.close()
    with pytest.raises(Unavailable):
        client.decrypt(users[0], sealed)
    assert deployment.credentials["app"] not in repr(client)


def test_a_malformed_answer_fails_over_and_is_never_no_key(
    deployment: Deployment, mirror: PadlockProcess, users: list[str]
) -> None:
    import http.server

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            self.rfile.read(int(self.headers["content-length"]))
            body = b'{"results": "not a list"}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with make(deployment, url, mirror.url) as client:
            assert client.decrypt_text(users[50], client.encrypt(users[50], "profile", "ok")) == "ok"
            assert client.stats()["failovers"] == 1
        with make(deployment, url) as client, pytest.raises(Unavailable) as raised:
            client.encrypt(users[50], "profile", "x")
        assert [a.reason for a in raised.value.attempts] == ["HTTP_200 BAD_RESPONSE"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_with_a_lower_batch_limit_gets_halved_batches() -> None:
    small = Deployment(max_batch=50)
    try:
        server = small.start("small")
        with make(small, server.url, cache=None) as client, ThreadPoolExecutor(8) as pool:
            ids = [f"small-{i}" for i in range(80)]
            list(pool.map(client.create_keychain, ids))
            records = [(u, client.encrypt(u, "profile", u)) for u in ids[:3]]
            before = batch_get_count(server)
            results = client.decrypt_many(records + [(u, records[0][1]) for u in ids[3:]])
            assert [r.plaintext for r in results[:3]] == [u.encode() for u in ids[:3]]
            assert [r.error.code if r.error else None for r in results[3:]] == ["DECRYPTION_FAILED"] * 77
            # The server counts refused requests too: 80 users in one batch (refused, BATCH_TOO_LARGE),
            # then 40 + 40 answered. Later calls use the lowered limit at once: 2.
            assert batch_get_count(server) - before == 3
            before = batch_get_count(server)
            client.decrypt_many(records + [(u, records[0][1]) for u in ids[3:]])
            assert batch_get_count(server) - before == 2
    finally:
        small.close()


def test_user_ids_with_every_allowed_punctuation_reach_the_right_keychain(app: PadlockClient) -> None:
    user = "a.b_c:d@e+f=g-h"  # each character the grammar allows beyond letters and digits, in a URL path
    assert app.create_keychain(user) is True
    sealed = app.encrypt(user, "profile", "odd id")
    hold = app.place_hold(user, "odd id hold")
    assert app.lifecycle_status(user).holds[0].hold_id == hold.hold_id
    app.release_hold(user, hold.hold_id)
    assert app.shred_category(user, "profile").shredded == 1
    with pytest.raises(KeychainShredded):
        app.decrypt(user, sealed)
    assert app.verify_receipt(app.shred_keychain(user).receipt_jws).sub == user


def test_get_keys_hands_out_copies_that_open_the_envelopes(app: PadlockClient) -> None:
    from padlock_client.envelope import open_envelope

    user = "keys-view"
    app.create_keychain(user)
    sealed = app.encrypt(user, "payments", "card")
    app.shred_category(user, "advertising")
    views = {v.category: v for v in app.get_keys(user)}
    assert views["advertising"].status == "shredded" and views["advertising"].current is None
    payments = views["payments"]
    assert payments.current == 1 and list(payments.keys) == [1]
    assert open_envelope(user, sealed, lambda c, n: payments.keys.get(n)) == b"card"
    payments.keys[1].wipe()  # the caller's copy: the client's own key is untouched
    assert app.decrypt_text(user, sealed) == "card"
    assert "redacted" in repr(views)


def test_threads_sharing_one_client_while_users_are_shredded(deployment: Deployment, primary: PadlockProcess) -> None:
    import random

    people = [f"stress-{i}" for i in range(40)]
    doomed = set(people[::4])
    with make(deployment, primary.url, batch=BatchOptions(max_in_flight=2)) as client:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client.create_keychain, people))
        sealed = {u: client.encrypt(u, "profile", f"data of {u}") for u in people}
        wrong: list[str] = []

        def worker(seed: int) -> int:
            rng = random.Random(seed)
            done = 0
            for _ in range(150):
                user = rng.choice(people)
                if rng.random() < 0.2:
                    client.forget(user)
                try:
                    if client.decrypt_text(user, sealed[user]) != f"data of {user}":
                        wrong.append(user)
                    done += 1
                except KeychainShredded:
                    if user not in doomed:
                        wrong.append(f"{user} reported shredded")
            return done

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(worker, seed) for seed in range(8)]
            for user in sorted(doomed):
                client.shred_keychain(user)
            assert sum(f.result() for f in futures) > 0
        assert wrong == []
        # This client shredded them: it answers shredded at once, whatever its threads had cached.
        for user in doomed:
            with pytest.raises(KeychainShredded):
                client.decrypt(user, sealed[user])


def _dripping_server(interval: float) -> tuple[socket.socket, threading.Event]:
    """Accepts connections and sends an HTTP answer's head one byte per `interval`, forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                for byte in b"HTTP/1.1 200 OK\r\nx-slow: " + b"a" * 10_000:
                    if stop.wait(interval):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    threading.Thread(target=serve, daemon=True).start()
    return listener, stop


def test_a_server_dripping_bytes_is_cut_off_at_the_timeout(deployment: Deployment, users: list[str]) -> None:
    # Each byte comes well within the 300 ms per-read timeout; the attempt as a whole must still end.
    listener, stop = _dripping_server(0.05)
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with make(deployment, url, timeout_ms=300, deadline_ms=300) as client:
            started = time.monotonic()
            with pytest.raises(Unavailable) as raised:
                client.encrypt(users[60], "profile", "x")
            assert time.monotonic() - started < 1.5
            assert [a.reason for a in raised.value.attempts] == ["TIMEOUT"]
    finally:
        stop.set()
        listener.close()


def test_close_cuts_off_calls_in_flight(deployment: Deployment, users: list[str]) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        client = make(deployment, f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_ms=20_000, deadline_ms=20_000)
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                client.encrypt(users[61], "profile", "x")
            except BaseException as error:  # noqa: BLE001 (recorded for the assertion)
                outcome.append(error)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)
        started = time.monotonic()
        client.close()
        caller.join(5)
        assert not caller.is_alive() and time.monotonic() - started < 2
        assert isinstance(outcome[0], Unavailable)
        assert "CANCELLED" in str(outcome[0])


def test_retries_are_opt_in_and_paid_from_a_budget(deployment: Deployment, users: list[str]) -> None:
    from padlock_client import RetryOptions

    nowhere = f"http://127.0.0.1:{_closed_port()}"
    with make(deployment, nowhere) as client, pytest.raises(Unavailable) as raised:
        client.encrypt(users[70], "profile", "x")
    assert len(raised.value.attempts) == 1 and client.stats()["retries"] == 0
    retry = RetryOptions(max_retries=2, base_delay_ms=10, max_delay_ms=20)
    with make(deployment, nowhere, retry=retry) as client, pytest.raises(Unavailable) as raised:
        client.encrypt(users[70], "profile", "x")
    assert len(raised.value.attempts) == 3 and client.stats()["retries"] == 2
    # A budget of one token: the first call retries once, the next (0.1 token earned) not at all.
    thrifty = RetryOptions(max_retries=2, budget_max=1, base_delay_ms=1, max_delay_ms=1)
    with make(deployment, nowhere, retry=thrifty) as client:
        for expected in (2, 1):
            with pytest.raises(Unavailable) as raised:
                client.encrypt(users[70], "profile", "x")
            assert len(raised.value.attempts) == expected
