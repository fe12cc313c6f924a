"""Issue 14 item 5, the pure parts: how user input is quoted back, how a SubmitJobs batch is cut
into Raft entries, and which time zone names are looked up at all."""

from __future__ import annotations

import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftsched.quoting import ECHO_CHARS, quote
from raftsched.state import commands as cmds
from raftsched.state.firetimes import MAX_TZ_CHARS, TZ_NAME_RE, FireTimeError, zone
from raftsched.v1 import jobs_pb2


def test_quote_keeps_short_input_as_repr_and_cuts_long_input_saying_its_length() -> None:
    assert quote("j42") == "'j42'"
    long = "x" * (1 << 20)
    out = quote(long)
    assert len(out) < ECHO_CHARS + 40 and out.endswith(f"... ({len(long)} characters)")
    assert quote(12345) == "'12345'"


@given(st.text(max_size=500))
def test_quote_is_bounded_whatever_the_text(text: str) -> None:
    assert len(quote(text)) <= 4 * ECHO_CHARS + 40  # repr may escape a character as \U0001f600


@given(st.lists(st.integers(0, 2 << 20), max_size=40))
def test_split_by_size_keeps_order_and_every_group_within_the_limit(lengths: list[int]) -> None:
    specs = [jobs_pb2.JobSpec(handler="noop", payload=b"p" * n) for n in lengths]
    groups = cmds.split_by_size([s.ByteSize() for s in specs])
    assert [i for g in groups for i in g] == list(range(len(specs)))
    for group in groups:
        encoded = len(cmds.encode(cmds.submit(*(specs[i] for i in group)), 2**62))
        assert encoded <= cmds.MAX_ENTRY_BYTES, (group, encoded)


def test_twelve_mib_specs_make_four_entries_of_three() -> None:
    specs = [jobs_pb2.JobSpec(handler="noop", payload=b"x" * (1 << 20)) for _ in range(12)]
    groups = cmds.split_by_size([s.ByteSize() for s in specs])
    assert [len(g) for g in groups] == [3, 3, 3, 3]


def test_every_iana_zone_name_passes_the_syntax_check() -> None:
    names = zoneinfo.available_timezones()
    assert names and all(TZ_NAME_RE.fullmatch(n) and len(n) <= MAX_TZ_CHARS for n in names)


@pytest.mark.parametrize("name", ["x" * 100_000, "America", "Europe/", "../etc/passwd", "zone.tab", "a//b",
                                  "/etc/localtime", "Europe/Paris\x00", "Mars/Olympus"])
def test_a_bad_zone_name_is_a_fire_time_error_naming_timezone(name: str) -> None:
    with pytest.raises(FireTimeError) as err:
        zone(name)
    assert err.value.field == "timezone" and len(str(err.value)) < 300
