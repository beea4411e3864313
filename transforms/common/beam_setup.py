"""set_up_beam(): what a process that runs oibeam stages needs, done once."""

from __future__ import annotations

_DONE = False


def set_up_beam() -> None:
    """Registers oibeam's coders and primes Beam's GCS filesystem against an
    emulator (anonymous_gcs_for_an_emulator); idempotent."""
    global _DONE
    if _DONE:
        return
    from oibeam.schemas.coders import register_coders
    from oibeam.transforms.common.gcs_client import anonymous_gcs_for_an_emulator

    register_coders()
    anonymous_gcs_for_an_emulator()
    _DONE = True
