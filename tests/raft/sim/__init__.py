"""The deterministic simulation harness: network, cluster driver, checkers, schedules.

One seed drives everything (TigerBeetle's VOPR): the fault mix, the workload, every message's
fate and every core's randomness. A failure prints the command that replays it.
"""
