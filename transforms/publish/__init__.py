"""Stage 8, publish: the manifest (last, after every count reconciles), `_SUCCESS`, and
ROOT/LATEST.
"""
