"""Read gs:// objects (mirror buckets) with google-cloud-storage, as a Download.

Same outcome vocabulary as HttpFetcher: a missing object is `gone`, a denied
one `http_error` 403, throttling and server errors are retried by the client
library within the deadline. Without credentials (and against an emulator,
STORAGE_EMULATOR_HOST) the client is anonymous, which public buckets allow.
"""

from __future__ import annotations

import hashlib
import threading
import time

import requests

from oibeam.transforms.common.gcs_client import storage_client
from oibeam.transforms.fetch.download import Download
from oibeam.transforms.fetch.fetch_config import FetchPolicy
from oibeam.transforms.fetch.host_policy import Refused, check_scheme, redact


def split_gs(url: str) -> tuple[str, str]:
    check_scheme(url, ("gs",))
    rest = url[len("gs://") :]
    bucket, _, name = rest.partition("/")
    if not bucket or not name:
        raise Refused(f"not a gs://bucket/object URL: {redact(url)}")
    return bucket, name


class GcsFetcher:
    """Fetches gs://bucket/object URLs; one storage client per thread."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self._local = threading.local()

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = storage_client()
            self._local.client = client
        return client

    def fetch(self, url: str) -> Download:
        from google.api_core import exceptions as gexc

        start = time.monotonic()
        result = Download(attempts=1)
        try:
            bucket, name = split_gs(url)
            blob = (
                self._client()
                .bucket(bucket)
                .get_blob(name, timeout=self.policy.timeout)
            )
            if blob is None:
                result.status, result.error = "gone", "no such object"
                result.http_status = 404
            elif blob.size is not None and blob.size > self.policy.max_bytes:
                result.status = "too_large"
                result.error = f"object size {blob.size} > --max-bytes"
            else:
                data = blob.download_as_bytes(timeout=self.policy.timeout)
                result.data, result.md5 = data, hashlib.md5(data).digest()
                result.http_status, result.final_url = 200, url
        except Refused as e:
            result.status, result.error = "refused", str(e)
        except gexc.NotFound:
            result.status, result.error, result.http_status = "gone", "not found", 404
        except gexc.Forbidden as e:
            result.status, result.http_status = "http_error", 403
            result.error = f"forbidden: {e.message[:200]}"
        except (gexc.TooManyRequests, gexc.ServerError) as e:
            result.status, result.retryable = "http_error", True
            result.http_status, result.error = e.code, str(e.message)[:200]
        except gexc.GoogleAPICallError as e:
            result.status, result.http_status = "http_error", e.code
            result.error = str(e.message)[:200]
        except (TimeoutError, requests.exceptions.Timeout, gexc.RetryError) as e:
            result.status, result.retryable = "timeout", True
            result.error = f"{type(e).__name__}: {str(e)[:200]}"
        except (ConnectionError, OSError) as e:
            result.status, result.retryable = "connection_error", True
            result.error = f"{type(e).__name__}: {str(e)[:200]}"
        result.elapsed_ms = int((time.monotonic() - start) * 1000)
        return result
