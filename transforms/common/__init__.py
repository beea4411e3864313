"""What every stage shares: Arrow helpers, ImageID keys, atomic file writes, exchange
files, the metrics namespace, the GCS client.
"""
