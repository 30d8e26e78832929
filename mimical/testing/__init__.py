"""Harness for the test suite and the benchmarks, not part of the product.

Real servers on loopback and how to wait for them (`servers`), and a stand-in for
Meta's Graph API (`fake_graph`). They live in the package (as `kopf.testing` does in
kopf) so that `benchmarks/` can use them without importing from `tests/`; the
pytest fixtures built on them stay in `tests/fixtures/`. Nothing in the product
imports this package.
"""
