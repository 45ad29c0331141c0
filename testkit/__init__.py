"""Helpers shared by tests and benchmarks (never shipped in the package): small data builders, the
reference implementations the tests compare against, a headless-browser driver."""
