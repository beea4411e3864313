"""oibeam's stages, one folder each in data-flow order: read, join, stats,
select, refresh, fetch, shard, publish; common holds what they share.

A process that runs stages is set up once, by set_up_beam(): the coders of the
elements the stages exchange are registered, and against a GCS emulator Beam's
GCS filesystem is told it is anonymous. Workers unpickle stages after loading
Beam, so importing this package does it there; the launcher calls it when it
builds pipeline options. A process that never loads Beam (an unchanged refresh,
`verify`, `report`) imports the stages' plain functions without paying for it.
"""

import sys

from oibeam.transforms.common.beam_setup import set_up_beam

if "apache_beam" in sys.modules:
    set_up_beam()
