"""Progress of long operations (raftsched.cli.progress): drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from raftsched.cli import progress


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, color_system=None), out


def test_a_transfer_shows_bytes_so_far() -> None:
    console, out = terminal()
    with progress.transfer("saving a snapshot to b.rss", console=console) as shown:
        shown(3 * 1024 * 1024)
    assert "saving a snapshot to b.rss" in out.getvalue() and "3.1/? MB" in out.getvalue()


def test_steps_timed_and_phases_name_where_they_are() -> None:
    console, out = terminal()
    with progress.steps("restoring b.rss", console=console) as step:
        step("checking every checksum")
    with progress.timed("chaos", 300, console=console) as bar:
        bar.update(150, "12 acked, kill")
    with progress.phases("bench", ["raftsched", "etcd"], console=console) as begin:
        begin("raftsched")
        begin("etcd")
    text = out.getvalue()
    assert "restoring b.rss: checking every checksum" in text
    assert "chaos (12 acked, kill)" in text and "300 s" in text
    assert "bench: done" in text and "2/2" in text


def test_nothing_is_drawn_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    with progress.transfer("saving", console=Console(file=out, force_terminal=False)) as shown:
        shown(10)
    assert out.getvalue() == ""
