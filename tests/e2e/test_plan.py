"""`oibeam plan` end to end: its selection equals a fetch's, its probe of the
loopback fault server estimates a known gone rate, stays within its time bound
and keeps the fetch's address policy."""

import base64
import csv
import hashlib
import json
import time

import pyarrow.parquet as pq
import pytest

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER
from support.paths import IMAGES
from support.runs import TablesRun, run_cli

HEADER = [*V1_IMAGES_HEADER.split(","), "Thumbnail300KURL"]
PHOTO = "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg"
PRIVATE = ["--allow-private-hosts", "--timeout", "2", "--deadline", "5"]


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _release(root, rows, thumbnail=""):
    """rows: (url, subset, size, md5) -> images.csv, labels.csv, dict.csv."""
    ids = [f"{i + 1:016x}" for i in range(len(rows))]
    with (root / "images.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for image_id, (url, subset, size, md5) in zip(ids, rows, strict=True):
            writer.writerow(
                [image_id, subset, url, "", "", "", "", "", size, md5, thumbnail]
            )
    labels = [LABELS_HEADER] + [
        f"{i},machine,/m/0{n % 2},0.9" for n, i in enumerate(ids)
    ]
    (root / "labels.csv").write_text("\n".join(labels) + "\n")
    (root / "dict.csv").write_text('"/m/00","even"\n"/m/01","odd"\n')
    return ids


def _inputs(root):
    return [
        "--images",
        root / "images.csv",
        "--labels",
        root / "labels.csv",
        "--classes",
        root / "dict.csv",
    ]


def _plan(root, *flags):
    out = root / "plan"
    code = run_cli("plan", *_inputs(root), "--output", out, *flags)
    assert code == 0
    return json.loads((out / "plan.json").read_text()), out


@pytest.fixture(scope="module")
def gone_release(fault_server, tmp_path_factory):
    """600 images, 30% of them 404, 5% changed, on two host names; 450 train."""
    root = tmp_path_factory.mktemp("plan")
    data = (IMAGES / PHOTO).read_bytes()
    rows = []
    for i in range(600):
        host = "127.0.0.1" if i % 3 else "localhost"
        route = "/status/404/x" if i % 10 < 3 else f"/img/{PHOTO}"
        route = f"/wrong/{PHOTO}" if i % 20 == 19 else route
        url = fault_server.url(route).replace("127.0.0.1", host) + f"?t=plan{i}"
        rows.append((url, "train" if i % 4 else "validation", len(data), _md5(data)))
    _release(root, rows)
    return root, rows, len(data)


def test_the_probe_estimates_a_known_gone_rate(gone_release, capsys):
    root, rows, size = gone_release
    plan, out = _plan(root, *PRIVATE, "--probe", "200", "--probe-seed", "3")
    selection = plan["selection"]
    assert selection["images"] == 600
    assert selection["bytes"] == 600 * size
    assert selection["per_subset"]["train"]["images"] == 450
    assert selection["per_subset"]["validation"]["images"] == 150
    hosts = selection["per_host"]
    port = rows[0][0].split(":")[2].split("/")[0]
    assert hosts[f"localhost:{port}"]["images"] == 200
    assert hosts[f"127.0.0.1:{port}"]["images"] == 400
    probe = plan["probe"]["overall"]
    assert probe["probed"] == 200 and probe["unfinished"] == 0
    outcomes = probe["outcomes"]
    assert sum(o["count"] for o in outcomes.values()) == 200
    low, high = outcomes["gone"]["ci95"]
    assert low <= 0.30 <= high, outcomes["gone"]
    assert high - low < 0.15  # 200 probes: about +-6 points
    low, high = outcomes["changed"]["ci95"]
    assert low <= 0.05 <= high, outcomes["changed"]
    assert outcomes["failed"]["count"] == 0
    assert set(plan["probe"]["per_host"]) == set(hosts)
    assert probe["latency_ms"]["median"] is not None
    # the projection writes what the probe expects to be ok
    projection = plan["projection"]
    assert projection["ok_share_assumed"] == outcomes["ok"]["share"]
    assert projection["bytes_written"] == int(600 * size * outcomes["ok"]["share"])
    assert projection["cost_usd"]["total"] > 0
    printed = capsys.readouterr().out
    assert "selected: 600 images" in printed and "probe: 200 URLs" in printed


def test_the_probe_is_the_same_sample_for_the_same_seed(gone_release):
    root, _, _ = gone_release
    first, _ = _plan(root, *PRIVATE, "--probe", "40", "--probe-seed", "9")
    again, _ = _plan(
        root, *PRIVATE, "--probe", "40", "--probe-seed", "9", "--overwrite"
    )
    assert (
        first["probe"]["overall"]["outcomes"] == again["probe"]["overall"]["outcomes"]
    )


def test_a_ranged_get_reads_one_byte_and_the_size_from_content_range(
    fault_server, tmp_path
):
    data = (IMAGES / PHOTO).read_bytes()
    good, grown = f"/img/{PHOTO}?t=ranged-1", f"/img/{PHOTO}?t=ranged-2"
    rows = [
        (fault_server.url(good), "train", len(data), _md5(data)),
        (fault_server.url(grown), "train", len(data) + 1, _md5(data)),
    ]
    _release(tmp_path, rows)
    plan, _ = _plan(tmp_path, *PRIVATE, "--probe", "5")
    outcomes = plan["probe"]["overall"]["outcomes"]
    assert (outcomes["ok"]["count"], outcomes["changed"]["count"]) == (1, 1)
    asked = fault_server.requests(good) + fault_server.requests(grown)
    assert [r.headers.get("range") for r in asked] == ["bytes=0-0"] * 2


def test_the_probe_keeps_its_time_bound(fault_server, tmp_path):
    rows = [
        (fault_server.url(f"/delay/30/{PHOTO}?t=bound{i}"), "train", 10, _md5(b"x"))
        for i in range(6)
    ]
    rows.append((fault_server.url(f"/img/{PHOTO}?t=bound"), "train", 10, _md5(b"x")))
    _release(tmp_path, rows)
    started = time.monotonic()
    plan, _ = _plan(
        tmp_path, "--allow-private-hosts", "--timeout", "20", "--probe-timeout", "2"
    )
    probe = plan["probe"]
    assert probe["elapsed_s"] < 4, probe
    assert time.monotonic() - started < 30  # Beam's start-up included
    overall = probe["overall"]
    assert overall["unfinished"] == 6 and overall["probed"] == 1


def test_the_probe_refuses_what_the_fetch_refuses(fault_server, tmp_path):
    data = (IMAGES / PHOTO).read_bytes()
    rows = [(fault_server.url(f"/img/{PHOTO}"), "train", len(data), _md5(data))] * 3
    _release(tmp_path, rows)
    plan, _ = _plan(tmp_path, "--probe", "3")
    overall = plan["probe"]["overall"]
    assert overall["outcomes"]["failed"]["count"] == 3
    assert overall["failures"] == {"refused": 3}


def test_plan_selects_exactly_what_fetch_fetches(fault_server, tmp_path):
    data = (IMAGES / PHOTO).read_bytes()
    rows = [
        (
            fault_server.url(f"/img/{PHOTO}?t=same{i}"),
            ("train", "validation")[i % 2],
            len(data),
            _md5(data),
        )
        for i in range(40)
    ]
    _release(tmp_path, rows)
    selection = ["--label", "/m/00", "--max-per-label", "7", "--subset", "train"]
    plan, out = _plan(tmp_path, *PRIVATE, *selection, "--probe", "0")
    assert plan["probe"] is None
    planned = pq.read_table(out / "tables" / "selected")["ImageID"].to_pylist()
    fetch_out = tmp_path / "fetched"
    code = run_cli(
        "fetch", *_inputs(tmp_path), *PRIVATE, *selection, "--output", fetch_out
    )
    assert code == 0
    fetched = TablesRun(fetch_out, code)
    ids = [r["ImageID"] for r in fetched.rows("images")]
    assert sorted(planned) == sorted(ids) and len(ids) == plan["selection"]["images"]
    assert plan["selection"]["images"] == 7


def test_plan_refuses_to_replace_a_finished_run(gone_release, tmp_path):
    root, _, _ = gone_release
    (tmp_path / "manifest.json").write_text("{}")
    code = run_cli("plan", *_inputs(root), "--output", tmp_path, "--probe", "0")
    assert code == 2


def test_thumbnails_are_probed_without_the_originals_size_and_md5(
    fault_server, tmp_path
):
    """A fetch of thumbnails checks no OriginalSize/OriginalMD5 (they are the
    originals'): neither does the probe."""
    data = (IMAGES / PHOTO).read_bytes()
    thumb = fault_server.url("/img/pillow_tests_hopper.png")
    rows = [
        (fault_server.url(f"/img/{PHOTO}?t=thumb{i}"), "train", len(data), _md5(data))
        for i in range(4)
    ]
    _release(tmp_path, rows, thumbnail=thumb)
    plan, out = _plan(tmp_path, *PRIVATE, "--image-source", "thumbnail")
    assert plan["probe"]["overall"]["outcomes"]["ok"]["count"] == 4
    selected = pq.read_table(out / "tables" / "selected")
    assert set(selected["url"].to_pylist()) == {thumb}
    assert selected["verify"].to_pylist() == [False] * 4
