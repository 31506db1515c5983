"""Benchmarks: what the privacy layer costs, each figure beside a baseline from the same run.

``python -m bench`` runs every benchmark, prints the table and writes ``docs/BENCHMARKS.md``;
``python -m bench --smoke`` runs them all at tiny sizes (CI keeps them working). They are not
part of the test suite. Every server is bound to 127.0.0.1 and every load loop is bounded in
count and in time.
"""
