"""Tests of the Raft core: deterministic simulation, scenarios, planted bugs."""
