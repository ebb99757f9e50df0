"""Benchmark suites: one module per suite, each with ``main(argv=None)``.

Run one as ``python -m gancomp.benchmarks.<suite>`` or through ``gancomp bench --suite``.
Each prints its table and writes its own section of docs/BENCHMARKS.md (gancomp.report).
"""
