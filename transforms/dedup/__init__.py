"""Stage 7, duplicates: exact duplicates (same OriginalMD5, same bytes) and
near ones (perceptual hashes a few bits apart), grouped into the run's
`duplicates` table.
"""
