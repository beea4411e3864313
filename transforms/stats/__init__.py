"""Stage 3, statistics: label counts and statistics over the joined labels, and the
trainable set.
"""
