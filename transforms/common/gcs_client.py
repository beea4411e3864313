"""One way to get a google-cloud-storage client: real credentials when the
environment has them, anonymous otherwise (public buckets) and always against
an emulator (STORAGE_EMULATOR_HOST); and Beam's GCS filesystem told the same
against an emulator."""

from __future__ import annotations

import os


def storage_client():
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client.create_anonymous_client()
    try:
        return storage.Client()
    except DefaultCredentialsError:
        return storage.Client.create_anonymous_client()


def anonymous_gcs_for_an_emulator() -> None:
    """Against a GCS emulator (STORAGE_EMULATOR_HOST) there are no credentials
    to find, and Beam's GCS filesystem would spend ~30 s retrying the search in
    every process: tell it up front that its client is anonymous. Beam offers
    no option for this (its --no_auth is not read by its GCS filesystem), so
    this sets Beam's private credentials cache, and does nothing where that
    cache is not as expected. Nothing changes against real GCS."""
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # Beam without its gcp extra: nothing to prime
        return
    cache = getattr(auth, "_Credentials", None)
    if cache is None or not hasattr(cache, "_credentials_init"):
        return
    with cache._credentials_lock:
        cache._credentials = None
        cache._credentials_init = True
