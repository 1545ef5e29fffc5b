"""The state file: bad files are refused (and left as they were), the single-instance lock."""

import logging
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from live_bridge.errors import InstanceLockedError, StateStoreError
from live_bridge.store import SCHEMA_VERSION, InstanceLock, KernelState, StateStore


def _good_store(path):
    store = StateStore(path)
    state = KernelState(("BTC-USD",), np.zeros(3), np.zeros((1, 2)), np.zeros((1, 1, 1), int), 7)
    with store.transaction() as db:
        store.save_state(db, state, 1)
    store.close()


def _bytes(path):
    return path.read_bytes() if path.exists() else None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"", "is empty", id="zero-byte"),
        pytest.param(b'{"cash": 1}\n', "is not a SQLite database", id="json"),
        pytest.param(b"\x00" * 4096, "is not a SQLite database", id="zeros"),
    ],
)
def test_state_store_bad_file_refused_unchanged(tmp_path, content, reason):
    path = tmp_path / "live.sqlite"
    path.write_bytes(content)
    with pytest.raises(StateStoreError, match=reason) as info:
        StateStore(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == content


def test_state_store_truncated_file_refused_unchanged(tmp_path):
    path = tmp_path / "live.sqlite"
    _good_store(path)
    data = path.read_bytes()
    assert len(data) > 4096
    path.write_bytes(data[: len(data) // 2 + 100])
    before = _bytes(path)
    with pytest.raises(StateStoreError, match="truncated or corrupt|corrupt") as info:
        StateStore(path)
    assert str(path) in str(info.value)
    assert _bytes(path) == before


def test_state_store_other_sqlite_database_refused(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StateStoreError, match="not a live-bridge state file"):
        StateStore(path)


def test_state_store_newer_schema_refused(tmp_path):
    path = tmp_path / "live.sqlite"
    _good_store(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    before = _bytes(path)
    with pytest.raises(StateStoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        StateStore(path)
    assert _bytes(path) == before


def test_state_store_corrupt_json_names_file_and_column(tmp_path):
    path = tmp_path / "live.sqlite"
    _good_store(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE kernel_state SET account = '[1, 2,'")
    db.commit()
    db.close()
    store = StateStore(path)
    with pytest.raises(StateStoreError, match=r"live.sqlite`: `kernel_state.account` must be JSON"):
        store.load_state()
    store.close()


def test_state_store_round_trip_keeps_state(tmp_path):
    path = tmp_path / "live.sqlite"
    _good_store(path)
    store = StateStore(path)
    state = store.load_state()
    assert state is not None
    assert state.last_bar_no == 7
    assert state.symbols == ("BTC-USD",)
    store.close()


def test_state_store_read_only_missing_file_refused(tmp_path):
    with pytest.raises(StateStoreError, match="does not exist"):
        StateStore(tmp_path / "absent.sqlite", read_only=True)
    assert not (tmp_path / "absent.sqlite").exists()


# --- the lock ----------------------------------------------------------------------------------


def test_instance_lock_second_holder_refused_naming_pid(tmp_path):
    state = tmp_path / "live.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from live_bridge.store import InstanceLock
            InstanceLock({str(state)!r}).acquire()
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            InstanceLockedError, match=f"in use by another live-bridge \\(PID {holder.pid}\\)"
        ):
            InstanceLock(state).acquire()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    lock = InstanceLock(state)
    lock.acquire()  # the dead holder's lock is free again
    lock.release()


def test_instance_lock_dead_pid_taken_over_with_log_line(tmp_path, caplog):
    state = tmp_path / "live.sqlite"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "live.sqlite.lock").write_text(f"{dead.pid}\n")
    with caplog.at_level(logging.WARNING, logger="live_bridge"), InstanceLock(state):
        pass
    assert any(
        f"from PID {dead.pid}, which is no longer running" in r.message for r in caplog.records
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="live_bridge"), InstanceLock(state):
        pass  # a clean release leaves no PID behind: nothing to take over
    assert not caplog.records
