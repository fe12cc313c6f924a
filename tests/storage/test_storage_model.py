"""RaftStore against MemoryStorage: random saves, compactions, snapshot installs and reopens must
leave every Storage method giving the same answer (or the same error) from both.

The operations stay within what Raft does (committed entries are never replaced, only applied
entries are compacted, terms never decrease), so `verify()` must also pass after every step.
A tiny entry cache makes both the cached and the on-disk read paths run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raftsched.raft.messages import ConfigState, Entry, EntryType, HardState, SnapshotMeta
from raftsched.raft.storage import MemoryStorage, StorageError
from raftsched.storage import NodeDB, RaftStore

NODES = ("n1", "n2", "n3", "n4")
configs = st.builds(
    ConfigState,
    voters=st.frozensets(st.sampled_from(NODES), min_size=1),
    learners=st.frozensets(st.sampled_from(NODES)),
)
payloads = st.binary(max_size=40)
entry_types = st.sampled_from(EntryType)
max_bytes = st.one_of(st.none(), st.integers(0, 200))


def outcome(call: Callable[..., object], *args: object) -> object:
    """The value, or the type of the storage error raised: what the two stores must agree on."""
    try:
        return call(*args)
    except StorageError as exc:
        return type(exc)


class StoreVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="raftstore-model-"))
        self.db = NodeDB(self.dir)
        self.store = RaftStore(self.db, cache_entries=4)
        self.model = MemoryStorage()

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir)

    @initialize(config=configs)
    def bootstrap(self, config: ConfigState) -> None:
        self.store.bootstrap(config)
        self.model = MemoryStorage.bootstrap(config.voters, config.learners)

    # --- operations ----------------------------------------------------------------------------

    @rule(data=st.data())
    def save(self, data: st.DataObject) -> None:
        model = self.model
        commit = model.hard_state.commit
        first = data.draw(st.integers(max(1, model.snapshot.index - 2), model.last_index() + 1), "first")
        # Indexes up to the commit index are re-sent unchanged (Raft never replaces committed entries).
        resent = [self._existing_or_filler(i) for i in range(first, min(commit, model.last_index()) + 1)]
        start = first + len(resent)
        count = data.draw(st.integers(0, 6), "count")
        fresh = self._fresh_entries(data, start, count)
        entries = resent + fresh
        model.append(entries)
        hard_state = data.draw(st.none() | self._hard_states(commit, model.last_index()), "hard_state")
        self.store.save(hard_state, entries)
        if hard_state is not None:
            model.set_hard_state(hard_state)

    @precondition(lambda self: self.model.snapshot.index < self.model.hard_state.commit)
    @rule(data=st.data(), config=configs)
    def compact(self, data: st.DataObject, config: ConfigState) -> None:
        model = self.model
        index = data.draw(st.integers(model.snapshot.index + 1, model.hard_state.commit), "index")
        term = model.term(index)
        self.store.compact(index, term, config)
        model.compact(index, term, config)

    @rule(data=st.data(), config=configs)
    def install_snapshot(self, data: st.DataObject, config: ConfigState) -> None:
        model = self.model
        low = max(model.snapshot.index, model.hard_state.commit) + 1
        index = data.draw(st.integers(low, model.last_index() + 3), "index")
        base = model.term(min(index, model.last_index()))
        term = base + data.draw(st.integers(0, 2), "term bump")
        meta = SnapshotMeta(index, term, config)
        hard_state = HardState(max(term, model.hard_state.term), model.hard_state.vote, index)
        self.store.save(hard_state, (), meta)
        model.apply_snapshot(meta)
        model.set_hard_state(hard_state)

    @rule(cache_entries=st.integers(1, 8))
    def reopen(self, cache_entries: int) -> None:
        self.db.close()
        self.db = NodeDB(self.dir)
        self.store = RaftStore(self.db, cache_entries=cache_entries)
        self.store.verify()

    @rule(lo=st.integers(0, 60), span=st.integers(-1, 12), limit=max_bytes)
    def read_range(self, lo: int, span: int, limit: int | None) -> None:
        hi = lo + span
        got = outcome(self.store.entries, lo, hi, limit)
        assert got == outcome(self.model.entries, lo, hi, limit), (lo, hi, limit)

    # --- the comparison after every step ---------------------------------------------------------

    @invariant()
    def same_answers(self) -> None:
        store, model = self.store, self.model
        assert store.initial_state() == model.initial_state()
        assert store.snapshot_meta() == model.snapshot_meta()
        assert (store.first_index(), store.last_index()) == (model.first_index(), model.last_index())
        for index in range(max(0, model.snapshot.index - 2), model.last_index() + 3):
            assert outcome(store.term, index) == outcome(model.term, index), index
        lo, hi = model.first_index(), model.last_index() + 1
        assert store.entries(lo, hi) == model.entries(lo, hi)
        store.verify()

    # --- generators --------------------------------------------------------------------------

    def _existing_or_filler(self, index: int) -> Entry:
        if index <= self.model.snapshot.index:  # compacted here; the store must skip it
            return Entry(term=self.model.snapshot.term, index=index, data=b"compacted")
        return self.model.entries(index, index + 1)[0]

    def _fresh_entries(self, data: st.DataObject, start: int, count: int) -> list[Entry]:
        model = self.model
        term = model.term(max(start, model.first_index()) - 1)
        fresh = []
        for index in range(start, start + count):
            term += data.draw(st.integers(0, 1), "term step")
            kind, payload = data.draw(entry_types, "type"), data.draw(payloads, "data")
            fresh.append(Entry(term=term, index=index, type=kind, data=payload))
        return fresh

    def _hard_states(self, commit: int, last: int) -> st.SearchStrategy[HardState]:
        return st.builds(
            HardState,
            term=st.integers(0, 20),
            vote=st.sampled_from(("", *NODES)),
            commit=st.integers(commit, last),
        )


StoreVersusModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestStoreVersusModel = StoreVersusModel.TestCase


def test_an_inverted_range_is_empty_in_both_stores(tmp_path: Path) -> None:
    """Found by the machine above under `make test`'s two workers: MemoryStorage sliced
    log[lo-base : hi-base] with hi < lo, and a negative end counts from the back of the list."""
    config = ConfigState(voters=frozenset({"n1"}), learners=frozenset())
    entries = [Entry(term=0, index=1), Entry(term=0, index=2)]
    model = MemoryStorage.bootstrap(config.voters, config.learners)
    model.append(entries)
    db = NodeDB(tmp_path)
    try:
        store = RaftStore(db, cache_entries=4)
        store.bootstrap(config)
        store.save(None, entries)
        assert store.entries(1, 0) == model.entries(1, 0) == []
        assert store.entries(2, 2) == model.entries(2, 2) == []
    finally:
        db.close()
