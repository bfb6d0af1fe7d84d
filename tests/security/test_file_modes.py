"""The data folder is its owner's only (issue 13, findings 3 and 7).

Transcripts are plain text in handoff.db and its -wal/-shm files, and the folder holds the
encryption key and the customer token secret: the folder is 0700 and every file in it 0600,
whatever the umask of the process; a secret file other users can read is refused with the
chmod that fixes it; and no command but `handoff up` leaves a key behind.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from handoff.codec import EncryptionConfigError, load_keys
from handoff.config import Settings
from handoff.customer_tokens import load_secret
from handoff.devserver import DevServer
from handoff.local_secrets import SecretFileError, make_private_dir
from handoff.store import Store
from tests.encryption_keys import TEST_KEYS


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The umask most shells have (0022: new files 0644, readable by every local user)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def unconfigured(data_dir: Path) -> Settings:
    return Settings(encryption_keys=None, database_url=f"sqlite:///{data_dir / 'handoff.db'}")


@pytest.mark.usefixtures("lax_umask")
def test_the_database_and_its_wal_and_shm_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(f"sqlite:///{data / 'handoff.db'}")
    try:
        with store.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (x TEXT)")
            connection.exec_driver_sql("INSERT INTO probe VALUES ('my card is 4111 1111 1111 1111')")
        files = sorted(p.name for p in data.iterdir())
        assert {"handoff.db", "handoff.db-wal", "handoff.db-shm"} <= set(files), files
        assert {name: mode(data / name) for name in files} == dict.fromkeys(files, 0o600)
        assert mode(data) == 0o700
    finally:
        store.close()


@pytest.mark.usefixtures("lax_umask")
def test_the_embedded_temporal_servers_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = DevServer(db_file=data / "temporal.db", log_file=data / "temporal.log")
    try:
        server.start()
        files = sorted(p.name for p in data.iterdir())
        assert {"temporal.db", "temporal.log"} <= set(files), files
        assert {name: mode(data / name) for name in files} == dict.fromkeys(files, 0o600)
        assert mode(data) == 0o700
    finally:
        server.stop()


def test_an_old_data_folder_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    for name in ("handoff.db", "handoff.db-wal", "temporal.db", "encryption.keys", "notes.txt"):
        (data / name).write_text("x")
        (data / name).chmod(0o644)
    make_private_dir(data)
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in data.iterdir()} == {
        "handoff.db": 0o600,
        "handoff.db-wal": 0o600,
        "temporal.db": 0o600,
        "encryption.keys": 0o600,
        "notes.txt": 0o644,  # not Handoff's: left alone
    }


@pytest.mark.parametrize("readable", [0o640, 0o604, 0o660])
def test_a_secret_file_other_users_can_read_is_refused_with_the_chmod_to_run(tmp_path: Path, readable: int) -> None:
    settings = unconfigured(tmp_path)
    load_keys(settings, create=True)
    load_secret(settings, create=True)
    keys, secret = tmp_path / "encryption.keys", tmp_path / "customer-token.secret"
    for path in (keys, secret):
        path.chmod(readable)
    with pytest.raises(EncryptionConfigError, match=f"chmod 600 {keys}") as refused:
        load_keys(settings)
    assert f"mode {readable:04o}" in str(refused.value)
    with pytest.raises(SecretFileError, match=f"chmod 600 {secret}"):
        load_secret(settings)
    # A configured key file is checked too.
    with pytest.raises(EncryptionConfigError, match="chmod 600"):
        load_keys(Settings(encryption_keys=None, encryption_key_file=keys))
    for path in (keys, secret):
        path.chmod(0o600)
    assert load_keys(settings) and load_secret(settings)


def test_without_create_a_missing_secret_is_an_error_and_no_file_is_made(tmp_path: Path) -> None:
    settings = unconfigured(tmp_path / "data")
    with pytest.raises(EncryptionConfigError, match="set HANDOFF_ENCRYPTION_KEYS"):
        load_keys(settings)
    with pytest.raises(SecretFileError, match="set HANDOFF_CUSTOMER_TOKEN_SECRET"):
        load_secret(settings)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["worker"], "no encryption key configured: set HANDOFF_ENCRYPTION_KEYS"),
        (["conversations", "history", "some-id"], "no encryption key configured: set HANDOFF_ENCRYPTION_KEYS"),
        (["demo"], "no encryption key configured: set HANDOFF_ENCRYPTION_KEYS"),
        (["api", "--port", "0"], "no customer token secret: set HANDOFF_CUSTOMER_TOKEN_SECRET"),
    ],
)
def test_a_command_outside_the_data_folder_makes_no_key_and_says_how_to_configure_one(
    tmp_path: Path, command: list[str], message: str
) -> None:
    """Only `handoff up` makes keys: anywhere else a new key would encrypt history nobody can read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env["HANDOFF_TEMPORAL_ADDRESS"] = "127.0.0.1:1"  # nothing may be reached before the refusal
    result = subprocess.run(
        [sys.executable, "-m", "handoff.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "handoff up" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_worker_without_a_key_says_how_to_configure_one_in_one_line(tmp_path: Path) -> None:
    """`python worker.py` in a folder with no key: exit code 2 and the setting to use, no
    traceback for ops to read through, and no key made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env["HANDOFF_TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parents[2] / "worker.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "HANDOFF_ENCRYPTION_KEYS" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_configured_key_is_used_without_any_file(tmp_path: Path) -> None:
    settings = Settings(
        encryption_keys=SecretStr(TEST_KEYS),
        customer_token_secret=SecretStr("x" * 32),
        database_url=f"sqlite:///{tmp_path / 'handoff.db'}",
    )
    assert load_keys(settings) and load_secret(settings)
    assert list(tmp_path.iterdir()) == []
