"""Support for the tests, the chaos harness (jepsen-style/) and the benchmarks (scripts/bench/):
standard library only, so it costs a node nothing to ship."""
