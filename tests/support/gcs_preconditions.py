"""Generation preconditions for the gcp-storage-emulator, which ignores them.

Real GCS rejects an upload whose `ifGenerationMatch` is not the object's
current generation (0: the object must not exist) with 412. The emulator
accepts every upload, so a test of "LATEST moves only from the generation this
run saw" would pass against it whatever the code did. `enable()` wraps the
emulator's upload handler (in this process: the emulator runs in a thread
here) with that check, made atomic with the upload by a lock.
"""

from __future__ import annotations

import threading
from http import HTTPStatus

_LOCK = threading.Lock()
_enabled = False


def _object_name(request) -> str | None:
    if "name" in request.query:
        return request.query["name"][0]
    data = request.data
    if isinstance(data, dict):
        return (data.get("meta") or {}).get("name") or data.get("name")
    return None


def _wrap(insert):
    from gcp_storage_emulator.exceptions import NotFound

    def insert_with_preconditions(request, response, storage, *args, **kwargs):
        wanted = request.query.get("ifGenerationMatch")
        if not wanted:
            return insert(request, response, storage, *args, **kwargs)
        bucket, name = request.params["bucket_name"], _object_name(request)
        with _LOCK:
            try:
                current = str(storage.get_file_obj(bucket, name).get("generation"))
            except NotFound:
                current = "0"
            if current != wanted[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(
                    {
                        "error": {
                            "code": 412,
                            "message": "At least one of the pre-conditions you "
                            "specified did not hold.",
                            "errors": [{"reason": "conditionNotMet"}],
                        }
                    }
                )
                return None
            return insert(request, response, storage, *args, **kwargs)

    return insert_with_preconditions


def enable() -> None:
    """Makes the emulator's uploads honour ifGenerationMatch (idempotent)."""
    global _enabled
    if _enabled:
        return
    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import objects

    original = objects.insert
    wrapped = _wrap(original)
    objects.insert = wrapped  # the server's fallback looks it up at call time
    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is original:
                handlers[method] = wrapped
    _enabled = True
