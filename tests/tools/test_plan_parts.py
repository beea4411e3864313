"""The pure parts of `oibeam plan`: the sample, the interval, the judging of
a probe, the URLs, the projection."""

import base64
import hashlib

import pyarrow as pa
import pytest

from oibeam.tools.plan import probe
from oibeam.tools.plan.projection import Prices, Throughput, project
from oibeam.tools.plan.selected_rows import selected_rows
from oibeam.tools.plan.selection_summary import Summary, host_of, hosts
from oibeam.transforms.fetch.download import Download
from oibeam.transforms.fetch.fetch_config import FetchConfig, FetchPolicy
from oibeam.transforms.fetch.image_tasks import target


def test_the_sample_depends_on_the_rows_and_seed_not_their_order():
    table = pa.table({"ImageID": [f"{i:016x}" for i in range(1000)]})
    one = probe.sample(table, 50, seed=4)["ImageID"].to_pylist()
    shuffled = table.take(pa.array(list(reversed(range(1000)))))
    assert probe.sample(shuffled, 50, seed=4)["ImageID"].to_pylist() == one
    assert probe.sample(table, 50, seed=5)["ImageID"].to_pylist() != one
    assert len(set(one)) == 50
    assert probe.sample(table, 5000, seed=4).num_rows == 1000


def test_a_sample_of_the_parts_samples_is_the_sample_of_the_whole():
    table = pa.table({"ImageID": [f"{i * 7919:016x}" for i in range(3000)]})
    parts = [table.slice(start, 700) for start in range(0, 3000, 700)]
    merged = pa.concat_tables([probe.sample(part, 40, seed=2) for part in parts])
    whole = probe.sample(table, 40, seed=2)["ImageID"].to_pylist()
    assert probe.sample(merged, 40, seed=2)["ImageID"].to_pylist() == whole
    # spread over the whole selection, not its first rows
    assert max(int(i, 16) for i in whole) > 2000 * 7919


def test_a_summary_added_up_by_parts_is_the_summary_of_the_whole():
    n = 1000
    table = pa.table(
        {
            "ImageID": [f"{i:016x}" for i in range(n)],
            "Subset": [
                None if i % 97 == 0 else ("train", "test")[i % 2] for i in range(n)
            ],
            "OriginalSize": pa.array([None if i % 13 == 0 else i for i in range(n)]),
            "host": [f"h{i % 5}" for i in range(n)],
        }
    )
    summary = Summary()
    for start in range(0, n, 300):
        summary.add(table.slice(start, 300))
    parts = summary.result()
    whole = Summary()
    whole.add(table)
    assert parts == whole.result()
    known = [i for i in range(n) if i % 13]
    assert (parts["images"], parts["bytes"]) == (n, sum(known))
    assert parts["unknown_size"] == n - len(known)
    assert parts["per_subset"]["(none)"]["images"] == len(range(0, n, 97))
    assert list(parts["per_host"]) == ["h0", "h1", "h2", "h3", "h4"]
    assert Summary().result()["images"] == 0


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # published Wilson 95% intervals (e.g. Newcombe 1998, table I)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611)],
)
def test_wilson_interval_matches_published_values(k, n, low, high):
    got = probe.wilson(k, n)
    assert got == pytest.approx((low, high), abs=5e-4)


def test_the_wilson_interval_covers_the_truth_about_95_percent_of_the_time():
    import random

    rng = random.Random(1)
    covered = 0
    for _ in range(2000):
        k = sum(rng.random() < 0.3 for _ in range(200))
        low, high = probe.wilson(k, 200)
        covered += low <= 0.3 <= high
    assert 0.93 <= covered / 2000 <= 0.97


def _download(**kw):
    return Download(http_status=206, data=b"x", md5=hashlib.md5(b"x").digest(), **kw)


def test_judging_a_probe():
    policy = FetchPolicy()
    body = b"hello"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    assert probe.judge(_download(total_size=5), 5, md5, policy) == ("ok", None)
    assert probe.judge(_download(total_size=6), 5, md5, policy)[0] == "changed"
    whole = Download(
        http_status=200, data=body, md5=hashlib.md5(body).digest(), total_size=5
    )
    assert probe.judge(whole, 5, md5, policy) == ("ok", None)
    other = Download(
        http_status=200, data=b"hellp", md5=hashlib.md5(b"hellp").digest(), total_size=5
    )
    assert probe.judge(other, 5, md5, policy)[0] == "changed"
    placeholder = FetchPolicy(placeholder_md5=(hashlib.md5(body).hexdigest(),))
    assert probe.judge(whole, 5, md5, placeholder)[0] == "gone"
    assert (
        probe.judge(Download(status="gone", error="HTTP 404"), 5, md5, policy)[0]
        == "gone"
    )
    assert probe.judge(Download(status="timeout"), 5, md5, policy) == (
        "failed",
        "timeout",
    )
    # a thumbnail is not compared with the original's size and MD5, as in a fetch
    assert probe.judge(_download(total_size=6), 5, md5, policy, verify=False) == (
        "ok",
        None,
    )
    # a 206 without a size (no Content-Range total) is not called changed
    assert probe.judge(_download(total_size=None), 5, md5, policy) == ("ok", None)


@pytest.mark.parametrize(
    "fetch",
    [
        FetchConfig(),
        FetchConfig(source="thumbnail"),
        FetchConfig(url_template="gs://mirror/{Subset}/{ImageID}.jpg"),
        FetchConfig(source="thumbnail", verify="md5"),
        FetchConfig(verify="decode"),
    ],
)
def test_plan_urls_are_the_fetch_targets(fetch):
    table = pa.table(
        {
            "ImageID": ["a", "b", "c", "d"],
            "Subset": ["train", "validation", "train", None],
            "OriginalURL": ["http://o/a", "http://o/b", "", None],
            "Thumbnail300KURL": ["http://t/a", None, "", "http://t/d"],
            "OriginalSize": pa.array([1, None, 3, 4], pa.int64()),
            "OriginalMD5": ["m", "m", "m", "m"],
            "labels": pa.array([[], [], [], []], pa.list_(pa.string())),
        }
    )
    rows = selected_rows(table, fetch)
    expected = [target(row, fetch) for row in table.to_pylist()]
    assert rows["url"].to_pylist() == [url for url, _ in expected]
    assert rows["verify"].to_pylist() == [md5 for _, md5 in expected]


def test_hosts():
    assert host_of("https://farm3.staticflickr.com/1/x.jpg") == "farm3.staticflickr.com"
    assert host_of("http://127.0.0.1:8080/x") == "127.0.0.1:8080"
    assert host_of("gs://mirror/train/x.jpg") == "gs://mirror"
    assert host_of(None) == "(no URL)"


def test_hosts_of_a_column_are_host_of_each_url():
    urls = [
        "https://farm3.staticflickr.com/1/x.jpg",
        "https://C1.StaticFlickr.com/5/4129/1_o.jpg",  # hosts are lower case
        "http://127.0.0.1:8080/x",
        "http://127.0.0.1:08080/x",  # the port as a number
        "http://127.0.0.1:0/x",
        "http://host:99999/x",  # no such port
        "http://host:/x",
        "http://user:pw@host.example:81/x",
        "http://[::1]:8080/x",
        "http://[::1/x",
        "HTTPS://UPPER.EXAMPLE/x",
        "https://host.example?query",
        "https://host.example",
        "ftp://files.example/x",
        "gs://mirror/train/x.jpg",
        "gs://mirror",
        "not a url",
        "",
        None,
    ]
    expected = [host_of(url) for url in urls]
    assert hosts(pa.array(urls, pa.string())).to_pylist() == expected
    assert expected[5] == expected[9] == "(bad URL)"  # not an exception
    assert expected[1] == "c1.staticflickr.com"
    assert expected[3] == "127.0.0.1:8080"
    assert expected[7] == "host.example:81"
    assert expected[14:16] == ["gs://mirror", "gs://mirror"]
    chunked = pa.chunked_array([urls[:3], urls[3:]], pa.string())
    assert hosts(chunked).to_pylist() == expected


def test_the_projection_is_bound_by_bytes_or_images():
    # 9,178,276 images of 2.14 MB on 8 workers at 130 MB/s: bytes bind (60.7/s)
    bytes_ = int(9_178_276 * 2.14e6)
    p = project(9_178_276, 9_178_276, bytes_, 0.9, 8, Throughput(), Prices())
    assert p["images_per_second_per_worker"] == pytest.approx(130e6 / 2.14e6, rel=1e-3)
    assert p["hours"] == pytest.approx(
        9_178_276 / (8 * 130e6 / 2.14e6) / 3600, rel=1e-3
    )
    assert p["bytes_written"] == int(bytes_ * 0.9)
    assert p["cost_usd"]["workers"] == pytest.approx(8 * p["hours"] * 0.1387, rel=1e-3)
    # small images: the images rate binds
    small = project(1000, 1000, 1000 * 10_000, None, 1, Throughput(), Prices())
    assert small["images_per_second_per_worker"] == 275
    assert small["ok_share_assumed"] == 1.0
    # images without an OriginalSize count at the mean of those with one
    half = project(1000, 500, 500 * 10_000, None, 1, Throughput(), Prices())
    assert (half["mean_image_bytes"], half["bytes_written"]) == (10_000, 10_000_000)
