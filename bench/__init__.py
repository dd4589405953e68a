"""Benchmarks of crfrnn-np (``make bench`` = ``python -m bench``); see ``bench/README.md``."""
