"""oibeam's composite transforms (one per module) and the pure logic they call."""

import os


def anonymous_gcs_for_an_emulator() -> None:
    """Against a GCS emulator (STORAGE_EMULATOR_HOST) there are no credentials
    to find, and Beam's GCS filesystem would spend ~20 s retrying the search
    in every process. Tell it up front that the client is anonymous. Nothing
    changes against real GCS."""
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # Beam without its gcp extra: nothing to prime
        return
    with auth._Credentials._credentials_lock:
        auth._Credentials._credentials = None
        auth._Credentials._credentials_init = True


anonymous_gcs_for_an_emulator()  # call it again if the variable is set later
