"""Benchmarks: media server vs nginx (`python -m bench.media`), API at scale (`bench.api`)."""
