"""Stage 6, fetch: download (HTTP or gs://), verify and tally every selected image,
shard by shard.
"""
