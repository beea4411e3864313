"""The flags of fetching: where each image comes from, how it is checked and
sharded, and the limits of one fetch."""

from __future__ import annotations

from oibeam.pipelines.options.flags import FlagGroup, flag
from oibeam.pipelines.options.selection import IMAGE_SOURCES
from oibeam.transforms.fetch.fetch_config import FetchConfig, FetchPolicy

TITLE = "fetching"

POLICY = FlagGroup(
    TITLE,
    FetchPolicy,
    (
        flag("--timeout", type=float, help="connect and read timeout, seconds"),
        flag(
            "--deadline",
            type=float,
            help="hard limit per image, retries included, seconds",
        ),
        flag(
            "--retries",
            type=int,
            help="retries of transient failures (5xx, 429, resets)",
        ),
        flag("--max-bytes", type=int, help="largest image to download"),
        flag(
            "--max-per-host",
            type=int,
            help="most requests in flight to one host per worker: each host "
            "starts at 8 (or this, if lower) and adapts (grows while it answers "
            "promptly, halves on 429/503/timeouts, waits out Retry-After)",
        ),
        flag(
            "--host-delay",
            type=float,
            help="politeness: seconds between requests to one host",
        ),
        flag("--max-redirects", type=int, help="redirects followed per image"),
        flag(
            "--placeholder-md5",
            nargs="+",
            action="extend",
            metavar="HEX",
            help="MD5s (hex) of known 'photo unavailable' images: bytes with one "
            "of them are `gone`, wherever they came from (the same bytes for "
            "several images of a shard are told without this)",
        ),
        flag(
            "--allow-private-hosts",
            action="store_true",
            help="allow hosts on private/loopback/link-local addresses (refused "
            "by default: a CSV row must not reach internal services)",
        ),
    ),
)

FETCH = FlagGroup(
    TITLE,
    FetchConfig,
    (
        flag(
            "--image-source",
            "source",
            choices=IMAGE_SOURCES,
            default=None,  # None: not given (the deprecated --source may say)
            help="original (the default): OriginalURL, verified by size and MD5; "
            "thumbnail: "
            "Thumbnail300KURL where there is one (generated on the fly, its bytes "
            "change over time: fully decoded instead of MD5-checked)",
        ),
        flag(
            "--url-template",
            help="build the URL from image columns, e.g. "
            "'gs://my-mirror/{Subset}/{ImageID}.jpg' or "
            "'https://m.example/{ImageID}.jpg'",
        ),
        flag(
            "--verify",
            choices=("auto", "md5", "decode"),
            help="auto: size+MD5 for originals and templates, full decode for "
            "thumbnails",
        ),
        flag(
            "--concurrency",
            type=int,
            help="images in flight per worker (one fetch loop drives them all; "
            "hundreds hide 100-200 ms round trips)",
        ),
        flag("--max-pixels", type=int, help="larger images are bombs"),
        flag(
            "--max-decode-memory",
            type=int,
            help="bytes one full decode may hold, estimated from the image's "
            "header; an image that needs more is too_large (a JPEG decodes at "
            "1/8 scale and needs little)",
        ),
        flag(
            "--full-decode",
            action="store_true",
            help="decode every image fully, not only unverifiable ones",
        ),
        flag(
            "--no-phash",
            "phash",
            action="store_false",
            help="do not compute the perceptual hash of ok images (the `phash` "
            "status column; near duplicates need it): saves a reduced decode "
            "of every ok image, ~0.6 ms of CPU for a 40 KB JPEG, ~2 ms at "
            "1024x768, ~4 ms at 1800x1200",
        ),
        flag(
            "--shard-bytes",
            type=int,
            help="target size of one tar shard (smaller when that gives fewer "
            "than 16 shards of at least 100 images: shards are the unit of "
            "parallel work)",
        ),
    ),
)


def fetch_config(args) -> FetchConfig:
    """FetchConfig from parsed flags, its FetchPolicy included."""
    return FETCH.from_args(args, policy=POLICY.from_args(args))
