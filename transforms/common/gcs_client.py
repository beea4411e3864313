"""One way to get a google-cloud-storage client: real credentials when the
environment has them, anonymous otherwise (public buckets) and always against
an emulator (STORAGE_EMULATOR_HOST)."""

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
