"""Stage 5, refresh: compare the selection with the previous snapshot and decide per
image: fetch, copy or keep.
"""
