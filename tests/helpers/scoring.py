"""Scoring functions for pool tests, imported by the pool's worker processes by name."""

import time

time.sleep(1.5)  # a worker start-up that would not fit in an item's 1 s timeout


def slow_start_echo(item):
    if item == "hang":
        time.sleep(60)
    return item


def raise_on_odd(item):
    if item % 2:
        raise ValueError(f"odd item {item}")
    return item


def allocate_mb(mb):
    block = bytearray(mb << 20)
    return len(block) >> 20
