"""`oibeam gc ROOT`: retention and takedown erasure for a snapshot root.

plan.py decides from what was found (no I/O), found.py reads the root,
tar_spans.py parses and rewrites tar headers, erase.py erases the members of
dead images from a pooled shard, run_gc.py claims the root, acts and prints.
"""
