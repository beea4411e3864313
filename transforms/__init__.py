"""oibeam's stages, one folder each in data-flow order: read, join, stats,
select, refresh, fetch, shard, publish; common holds what they share.

Every process that runs a stage (the launcher, and each worker when it
unpickles one) imports this package first. That is where the process is set
up, once: the coders of the elements the stages exchange are registered, and
against a GCS emulator Beam's GCS filesystem is told it is anonymous (call
anonymous_gcs_for_an_emulator again if STORAGE_EMULATOR_HOST is set later).
"""

from oibeam.schemas.coders import register_coders
from oibeam.transforms.common.gcs_client import anonymous_gcs_for_an_emulator

register_coders()
anonymous_gcs_for_an_emulator()
