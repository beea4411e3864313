"""One run per snapshot id: a held claim refuses a second run, and a run that
ended (even killed) no longer holds it; locally and on GCS (the emulator)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from oibeam.transforms.publish.claim import SnapshotClaimed, claim_name, claimed


def test_a_local_claim_refuses_a_second_run_until_it_ends(tmp_path):
    root = str(tmp_path / "root")
    with claimed(root, "s1"):
        with pytest.raises(
            SnapshotClaimed,
            match=r"snapshot s1 under .* being built by another run \(pid ",
        ):
            with claimed(root, "s1"):
                pass
        with claimed(root, "s2"):  # another id is another claim
            pass
    with claimed(root, "s1"):  # released at the end
        pass


def test_a_killed_run_no_longer_holds_its_claim(tmp_path):
    root = tmp_path / "root"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from oibeam.transforms.publish.claim import claimed\n"
            f"with claimed({str(root)!r}, 's1'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(SnapshotClaimed):
            with claimed(str(root), "s1"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with claimed(str(root), "s1"):  # the system released the lock
        pass


def test_a_gcs_claim_is_exclusive_renewed_and_taken_over_when_expired(gcs_emulator):
    bucket = gcs_emulator.create_bucket("claims")
    root = f"gs://{bucket.name}/snapshots"
    name = f"snapshots/{claim_name('s1')}"
    with claimed(root, "s1", lease=30, renew=0.2):
        first = bucket.get_blob(name).generation
        with pytest.raises(SnapshotClaimed, match="being built by another run"):
            with claimed(root, "s1"):
                pass
        time.sleep(0.7)
        assert bucket.get_blob(name).generation != first  # the lease was renewed
    assert bucket.get_blob(name) is None  # released: the object is gone
    # A run that died leaves a claim whose lease runs out: the next run takes
    # it over (and keeps it exclusive while it runs).
    bucket.blob(name).upload_from_string(
        '{"pid": 1, "host": "gone", "expires": "2000-01-01T00:00:00+00:00"}'
    )
    with claimed(root, "s1"):
        with pytest.raises(SnapshotClaimed):
            with claimed(root, "s1"):
                pass
    assert bucket.get_blob(name) is None
