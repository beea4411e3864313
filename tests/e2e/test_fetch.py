"""`oibeam fetch` end to end against the misbehaving loopback server."""

import base64
import csv
import hashlib
import json
import tarfile

import pytest
import webdataset as wds

from oibeam.transforms.fetch.fetch_images import shard_count

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER
from support.paths import IMAGES
from support.runs import TablesRun, run_cli

HEADER = [*V1_IMAGES_HEADER.split(","), "Thumbnail300KURL"]  # as V2 and V3
PHOTO = "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg"

# (route, served file, expected status); ImageIDs are assigned in this order.
# Failures worth a retry in a later run: 5xx/429 after every retry, timeouts and
# connection errors; never a 4xx, a loop, changed bytes or a bad image.
CASES = [
    ("/img/{f}", PHOTO, "ok"),
    ("/img/{f}", "exif_orientation_recurser_Landscape_6.jpg", "ok"),
    ("/img/{f}", "pillow_tests_pil_sample_cmyk.jpg", "ok"),
    ("/img/{f}", "pillow_tests_hopper.png", "ok"),
    ("/img/{f}", "pillow_tests_hopper.gif", "ok"),
    ("/redirect/2/{f}", "tencent_ml_images_im_0.jpg", "ok"),
    ("/flaky/2/{f}", PHOTO, "ok"),
    ("/ratelimit/1/{f}", PHOTO, "ok"),
    ("/status/404/{f}", PHOTO, "gone"),
    ("/status/410/{f}", PHOTO, "gone"),
    ("/placeholder/{f}", PHOTO, "gone"),
    ("/wrong/{f}", PHOTO, "changed"),
    ("/status/500/{f}", PHOTO, "http_error"),
    ("/loop", PHOTO, "http_error"),
    ("/slow/5000/{f}", PHOTO, "timeout"),
    ("/reset/{f}", PHOTO, "connection_error"),
    ("/truncated/{f}", PHOTO, "connection_error"),
    ("/endless", PHOTO, "too_large"),
    ("/img/{f}", "pillow_tests_decompression_bomb.gif", "too_large"),
    ("/img/{f}", "pillow_tests_broken.png", "not_an_image"),
    ("/img/{f}", "pillow_tests_truncated_jpeg.jpg", "ok"),  # its MD5 is its own
    ("/redirect-to?url=ftp://example.com/x.jpg", PHOTO, "refused"),
]
RETRYABLE = {"/status/500/{f}", "/slow/5000/{f}", "/reset/{f}", "/truncated/{f}"}


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _release(root, server, tag):
    ids = [f"{i + 1:016x}" for i in range(len(CASES))]
    with (root / "images.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for image_id, (route, name, _) in zip(ids, CASES, strict=True):
            data = (IMAGES / name).read_bytes()
            url = server.url(route.format(f=name))
            url += ("&" if "?" in url else "?") + f"t={tag}-{image_id}"
            thumb = server.url(f"/img/{name}")
            writer.writerow(
                [
                    image_id,
                    "train",
                    url,
                    "https://flickr.com/p",
                    "by",
                    "https://f/u",
                    "Au, thor",
                    f"T {image_id}",
                    len(data),
                    _md5(data),
                    thumb,
                ]
            )
    labels = [LABELS_HEADER]
    for i, image_id in enumerate(ids):
        labels.append(f"{image_id},machine,/m/0{i % 2},0.9")
    (root / "labels.csv").write_text("\n".join(labels) + "\n")
    (root / "dict.csv").write_text('"/m/00","even"\n"/m/01","odd"\n')
    return ids


FETCH_FLAGS = [
    "--allow-private-hosts",
    "--timeout",
    "1",
    "--deadline",
    "3",
    "--retries",
    "2",
    "--max-bytes",
    str(4 << 20),
    "--concurrency",
    "8",
]


@pytest.fixture(scope="module")
def fetched(fault_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("fetch")
    ids = _release(root, fault_server, "e2e")
    out = root / "out"
    code = run_cli(
        "fetch",
        "--images",
        root / "images.csv",
        "--labels",
        root / "labels.csv",
        "--classes",
        root / "dict.csv",
        *FETCH_FLAGS,
        "--shard-bytes",
        "1000000",
        "--output",
        out,
    )
    return TablesRun(out, code), ids


def test_every_image_gets_the_right_status(fetched):
    run, ids = fetched
    assert run.exit_code == 0
    rows = {r["ImageID"]: r for r in run.rows("images")}
    assert len(rows) == len(CASES)  # nothing lost, nothing doubled
    for image_id, (route, name, expected) in zip(ids, CASES, strict=True):
        row = rows[image_id]
        assert row["status"] == expected, (route, name, row["error"])
        assert row["retryable"] == (route in RETRYABLE), (route, row["error"])
        assert row["labels"], "the labels travel with the image"
    counts = run.manifest["counts"]
    assert counts["selected"] == len(CASES)
    assert sum(v for k, v in counts.items() if k.startswith("status:")) == len(CASES)
    assert rows[ids[6]]["attempts"] == 3  # 500, 500, then the bytes
    assert rows[ids[1]]["exif_orientation"] == 6
    assert (rows[ids[1]]["display_width"], rows[ids[1]]["display_height"]) == (
        1800,
        1200,
    )
    assert rows[ids[2]]["mode"] == "CMYK"


def test_ok_images_are_byte_identical_in_their_shards(fetched):
    run, ids = fetched
    rows = {r["ImageID"]: r for r in run.rows("images")}
    index = {r["ImageID"]: r for r in run.rows_at("shards/index")}
    shards = sorted((run.root / "shards").glob("images-*.tar"))
    assert len(shards) == len(run.manifest["tables"]["shards"]["files"]) >= 2
    ok = [i for i in ids if rows[i]["status"] == "ok"]
    assert set(index) == set(ok)
    for image_id, (_, name, _) in zip(ids, CASES, strict=True):
        if image_id not in index:
            continue
        entry = index[image_id]
        data = (IMAGES / name).read_bytes()
        blob = (run.root / "shards" / entry["shard"]).read_bytes()
        assert blob[entry["offset"] : entry["offset"] + entry["size"]] == data
        assert rows[image_id]["shard"] == entry["shard"]
        with tarfile.open(run.root / "shards" / entry["shard"]) as tar:
            assert tar.extractfile(entry["member"]).read() == data
            meta = json.loads(tar.extractfile(entry["json_member"]).read())
            assert meta["ImageID"] == image_id and meta["fetch"]["status"] == "ok"
            assert meta["labels"][0]["display_name"] in ("even", "odd")
    samples = list(
        wds.WebDataset([str(s) for s in shards], shardshuffle=False, empty_check=False)
    )
    assert sorted(s["__key__"] for s in samples) == sorted(ok)


def test_selection_by_label_name_and_a_stable_limit(fault_server, tmp_path):
    ids = _release(tmp_path, fault_server, "select")
    out = tmp_path / "out"
    code = run_cli(
        "fetch",
        "--images",
        tmp_path / "images.csv",
        "--labels",
        tmp_path / "labels.csv",
        "--classes",
        tmp_path / "dict.csv",
        "--label",
        "Odd",
        "--limit",
        "3",
        *FETCH_FLAGS,
        "--output",
        out,
    )
    assert code == 0
    run = TablesRun(out, code)
    picked = {r["ImageID"] for r in run.rows("images")}
    odd = {i for n, i in enumerate(ids) if n % 2 == 1}
    assert len(picked) == 3 and picked <= odd


def test_loopback_is_refused_without_allow_private_hosts(fault_server, tmp_path):
    _release(tmp_path, fault_server, "private")
    out = tmp_path / "out"
    code = run_cli(
        "fetch",
        "--images",
        tmp_path / "images.csv",
        "--limit",
        "4",
        "--output",
        out,
    )
    assert code == 0
    statuses = {r["status"] for r in TablesRun(out, code).rows("images")}
    assert statuses == {"refused"}


def test_thumbnails_are_decoded_not_md5_checked(fault_server, tmp_path):
    ids = _release(tmp_path, fault_server, "thumb")
    out = tmp_path / "out"
    code = run_cli(
        "fetch",
        "--images",
        tmp_path / "images.csv",
        "--source",
        "thumbnail",
        *FETCH_FLAGS,
        "--output",
        out,
    )
    assert code == 0
    rows = {r["ImageID"]: r for r in TablesRun(out, code).rows("images")}
    truncated = ids[[n for _, n, _ in CASES].index("pillow_tests_truncated_jpeg.jpg")]
    assert rows[truncated]["status"] == "decode_error"
    assert rows[ids[0]]["status"] == "ok" and rows[ids[0]]["checked"] == "decode"
    assert rows[ids[0]]["md5_ok"] is None


def test_refetch_from_an_images_table_refuses_unsafe_ids(fetched, tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    run, ids = fetched
    picked = [ids[0], ids[2], ids[10]]  # ids[10] has hex letters
    table = run.table("images").filter(
        pc.is_in(run.table("images")["ImageID"], pa.array(picked))
    )
    # A path traversal, a good one, one not in normal (lowercase) form.
    bad = ["../../etc/evil", ids[2], ids[10].upper()]
    table = table.sort_by("ImageID").set_column(
        table.schema.get_field_index("ImageID"), "ImageID", pa.array(bad)
    )
    pq.write_table(table, tmp_path / "images.parquet")
    out = tmp_path / "out"
    code = run_cli(
        "fetch", "--images", tmp_path / "images.parquet", *FETCH_FLAGS, "--output", out
    )
    assert code == 0
    rows = {r["ImageID"]: r for r in TablesRun(out, code).rows("images")}
    assert rows["../../etc/evil"]["status"] == "refused"
    assert rows[ids[10].upper()]["status"] == "refused"
    assert rows[ids[2]]["status"] == "ok"  # the earlier status columns were dropped
    with tarfile.open(next((out / "shards").glob("*.tar"))) as tar:
        assert all(".." not in n and "/" not in n for n in tar.getnames())


def test_shard_count_follows_bytes_with_enough_shards_to_share_out():
    mb = 1 << 20
    assert shard_count((5000, 2300 * mb), 256 * mb) == 16  # 9 by bytes alone
    assert shard_count((5000, 2300 * mb), 64 * mb) == 36  # bytes decide
    assert shard_count((700, 320 * mb), 256 * mb) == 7  # 100 images a shard at least
    assert shard_count((30, 14 * mb), 256 * mb) == 1
    assert shard_count((3, 9000 * mb), 256 * mb) == 3  # never more than images
    assert shard_count((0, 0), 256 * mb) == 1
