"""WISH speed and memory benchmarks (``tools/benchmark.py`` is their command line; docs in :mod:`.cli`).

One module per measurement: :mod:`.pooling` (batched vs per-mask pooling), :mod:`.epochs` (online vs cached
training, extraction rate, cached training beyond the shard LRU), :mod:`.rss` (peak memory of cached training),
:mod:`.extraction` (1080p frames with SAM-scale proposal counts, cache size, VISOR-split loading). Every figure
is printed next to its target by :mod:`.report`."""
