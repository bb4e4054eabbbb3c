"""Interleaved timing of the variants a benchmark tool compares.

After the warm-up the variants take turns, one iteration each, so that other load on a shared
machine hits all of them alike; the ratios of a table then come from one run.
"""
import time
from typing import Callable, Dict, List, NamedTuple, Sequence


class Variant(NamedTuple):
    """One timed configuration: its name and one iteration."""
    name: str
    run: Callable[[], None]


def time_variants(variants: Sequence[Variant], iters: int, warmup: int,
                  synchronize: Callable[[], None] = lambda: None
                  ) -> Dict[str, Dict[str, List[float]]]:
    """Wall-clock and process CPU seconds of ``iters`` interleaved iterations per variant;
    ``synchronize`` waits for queued device work around each iteration."""
    for variant in variants:
        for _ in range(warmup):
            variant.run()
    times = {v.name: dict(wall=[], cpu=[]) for v in variants}
    for _ in range(iters):
        for variant in variants:
            synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            variant.run()
            synchronize()
            times[variant.name]['wall'].append(time.perf_counter() - wall)
            times[variant.name]['cpu'].append(time.process_time() - cpu)
    return times
