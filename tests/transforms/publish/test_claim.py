"""One run per snapshot id: a held claim refuses a second run, and a run that
ended (even killed) no longer holds it; gc's claim and the snapshot claims see
each other; locally and on GCS (the emulator)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from oibeam.transforms.publish.claim import (
    GC_CLAIM,
    RootBusy,
    SnapshotClaimed,
    claim_name,
    claimed,
    claimed_name,
    held_claims,
    wait_for_gc,
)

from support.claims import claim_held


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


def test_held_claims_and_waiting_for_gc_locally(tmp_path):
    root = str(tmp_path / "root")
    assert held_claims(root) == []  # no root yet: nothing held
    with claimed(root, "s1"):
        with claimed_name(root, GC_CLAIM):
            assert held_claims(root) == [GC_CLAIM, ".s1.claim"]
            with pytest.raises(RootBusy, match="oibeam gc has been running on"):
                wait_for_gc(root, timeout=0.3, poll=0.1)
        assert held_claims(root) == [".s1.claim"]
        wait_for_gc(root, timeout=0.3, poll=0.1)  # released: no wait
    assert held_claims(root) == []  # the files stay, nobody holds them
    assert sorted(os.listdir(root)) == [GC_CLAIM, ".s1.claim"]

    # A waiting snapshot run goes on as soon as gc lets go.
    with claim_held(root, GC_CLAIM, 0.5) as released:
        wait_for_gc(root, timeout=10, poll=0.05)
        assert released and time.monotonic() >= released[0]


def test_gcs_claims_are_seen_by_gc_and_snapshot_runs(gcs_emulator):
    bucket = gcs_emulator.create_bucket("claims-gc")
    root = f"gs://{bucket.name}/snapshots"
    bucket.blob("snapshots/s1/_SUCCESS").upload_from_string("x")  # not a claim
    assert held_claims(root) == []
    with claimed(root, "s2", lease=30, renew=5):
        with claimed_name(root, GC_CLAIM, lease=30, renew=5):
            assert held_claims(root) == [GC_CLAIM, ".s2.claim"]
            with pytest.raises(RootBusy):
                wait_for_gc(root, timeout=0.3, poll=0.1)
            with pytest.raises(SnapshotClaimed, match="held by another run"):
                with claimed_name(root, GC_CLAIM):
                    pass
        assert held_claims(root) == [".s2.claim"]
        wait_for_gc(root, timeout=0.3, poll=0.1)
    assert held_claims(root) == []
    # A claim whose lease ran out (its run died) is not held.
    bucket.blob(f"snapshots/{claim_name('s3')}").upload_from_string(
        '{"pid": 1, "host": "gone", "expires": "2000-01-01T00:00:00+00:00"}'
    )
    bucket.blob(f"snapshots/{GC_CLAIM}").upload_from_string("not json")
    assert held_claims(root) == []
    wait_for_gc(root, timeout=0.3, poll=0.1)
