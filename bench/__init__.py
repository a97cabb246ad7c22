"""`make bench`: the figures of the performance and cost issue, each beside its baseline,
measured side by side in one run. See ``python -m bench --help``.

Benchmarks print figures; they never fail on time (exit status 0 unless the bench
itself breaks).
"""
