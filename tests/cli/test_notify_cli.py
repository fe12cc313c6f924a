"""`raftsched notify`: the checks made before anything is sent, and the table people read."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from raftsched.cli.commands.notify import EVENT_TYPES, parse_events, read_secret
from raftsched.cli.errors import UsageError
from raftsched.cli.main import main
from raftsched.cli.output import notify_sinks_table
from raftsched.state import notify as state_notify
from raftsched.v1 import notify_pb2


def test_the_cli_knows_the_same_event_types_as_the_cluster() -> None:
    assert EVENT_TYPES == state_notify.EVENT_TYPES


def test_a_secret_file_loses_one_trailing_newline_and_must_hold_1_to_1024_bytes(tmp_path: Path) -> None:
    f = tmp_path / "s"
    f.write_bytes(b"abc\n")
    assert read_secret(str(f)) == b"abc"
    f.write_bytes(b"abc\r\n")
    assert read_secret(str(f)) == b"abc"
    f.write_bytes(b"\n")
    with pytest.raises(UsageError, match="empty"):
        read_secret(str(f))
    f.write_bytes(b"x" * 1025)
    with pytest.raises(UsageError, match="at most 1024"):
        read_secret(str(f))
    with pytest.raises(UsageError, match="--secret-file"):
        read_secret(str(tmp_path / "missing"))


def test_events_are_checked_and_deduplicated() -> None:
    assert parse_events("job.failed, executor.down,job.failed") == ["job.failed", "executor.down"]
    assert parse_events(None) == [] and parse_events("") == []
    with pytest.raises(UsageError, match=r"job\.exploded"):
        parse_events("job.failed,job.exploded")


def test_bad_command_lines_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "add", "x"]) == 2  # --url is required
    assert main(["notify", "add", "x", "--url", "ftp://h/"]) == 2
    err = capsys.readouterr().err
    assert "--url" in err and "Traceback" not in err


def test_the_table_shows_counts_and_never_a_secret() -> None:
    sink = notify_pb2.NotifySink(name="ops", url="https://h/x", has_secret=True, pending=3, delivered=10,
                                 failed_attempts=2, expired=1, dropped=0, last_error="HTTP 502",
                                 last_error_ms=1_000, last_delivered_ms=2_000, events=["job.failed"])
    console = Console(width=250, record=True)
    console.print(notify_sinks_table([sink], now=5_000))
    text = console.export_text()
    for expected in ("ops", "https://h/x", "job.failed", "yes", "HTTP 502", "4.0s ago", "3.0s ago"):
        assert expected in text, expected
