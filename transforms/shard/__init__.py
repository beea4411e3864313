"""Stage 7, shard: write WebDataset tar shards, their index and images part, committed
in crash-safe order.
"""
