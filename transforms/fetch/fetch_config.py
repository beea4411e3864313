"""How images are fetched and verified: the options of a fetch (no Beam, no
network or image libraries here: the command line builds these without
loading the fetch code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from string import Formatter

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's hard limit (2 x MAX_IMAGE_PIXELS)
# Twice a download's --max-bytes: every baseline JPEG under DEFAULT_MAX_PIXELS
# decodes within it (11 MiB at 1/8 scale), so do RGB(A) PNGs up to 33 M pixels
# and progressive JPEGs up to 43 M. A worker decodes one image at a time.
DEFAULT_MAX_DECODE_MEMORY = 128 << 20


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch (flag names in brackets)."""

    timeout: float = 10.0  # connect and per-read timeout, seconds [--timeout]
    deadline: float = 60.0  # whole fetch incl. retries, seconds [--deadline]
    retries: int = 3  # extra attempts after a transient failure [--retries]
    max_bytes: int = 64 << 20  # [--max-bytes]
    max_per_host: int = 64  # most requests in flight to one host [--max-per-host]
    host_delay: float = 0.0  # min seconds between request starts per host
    max_redirects: int = 5
    allow_private_hosts: bool = False
    backoff: float = 0.5  # first retry waits up to this, doubling each time
    max_backoff: float = 20.0
    placeholders: tuple[str, ...] = ("photo_unavailable",)  # in a redirect's URL
    placeholder_md5: tuple[str, ...] = ()  # MD5 (hex) of known placeholder images
    user_agent: str = "oibeam/0.1 (Open Images snapshot tool)"

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.deadline <= 0:
            raise ValueError("--timeout and --deadline must be > 0")
        if any(
            len(d) != 32 or d.strip("0123456789abcdef") for d in self.placeholder_md5
        ):
            raise ValueError("--placeholder-md5 takes MD5s as 32 lowercase hex digits")
        if self.retries < 0 or self.max_bytes < 1 or self.max_per_host < 1:
            raise ValueError("--retries >= 0, --max-bytes >= 1, --max-per-host >= 1")


@dataclass(frozen=True)
class FetchConfig:
    """How images are fetched and verified (flag names in brackets)."""

    source: str = "original"  # original | thumbnail [--source]
    url_template: str | None = None  # e.g. gs://mirror/{Subset}/{ImageID}.jpg
    verify: str = "auto"  # auto | md5 | decode [--verify]
    concurrency: int = 256  # images in flight per worker [--concurrency]
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    max_pixels: int = DEFAULT_MAX_PIXELS  # [--max-pixels]
    # bytes one full decode may hold [--max-decode-memory]
    max_decode_memory: int = DEFAULT_MAX_DECODE_MEMORY
    full_decode: bool = False  # decode even MD5-verified images [--full-decode]
    shard_bytes: int = 256 << 20  # target bytes per shard [--shard-bytes]
    # a perceptual hash of every ok image, for near duplicates [--no-phash]
    phash: bool = True

    def __post_init__(self) -> None:
        if self.source not in ("original", "thumbnail"):
            raise ValueError("the image source is original or thumbnail")
        if self.verify not in ("auto", "md5", "decode"):
            raise ValueError("--verify is auto, md5 or decode")
        if self.concurrency < 1 or self.shard_bytes < 1:
            raise ValueError("--concurrency and --shard-bytes must be >= 1")
        if self.max_decode_memory < 1:
            raise ValueError("--max-decode-memory must be >= 1")

    def check_template(self, columns: list[str]) -> None:
        """ValueError unless the URL template is text with {Column} fields that
        name columns the images have (nothing else: no {}, {0}, {a.b}, {a[0]},
        conversions or format specs)."""
        if not self.url_template:
            return
        try:
            fields = list(Formatter().parse(self.url_template))
        except ValueError as e:  # a lone { or }
            raise ValueError(f"--url-template {self.url_template!r}: {e}") from None
        names = set()
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if not name.isidentifier() or spec or conversion:
                raise ValueError(
                    f"--url-template {self.url_template!r}: "
                    f"{{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} is not a {{Column}} field "
                    "(write a column name in braces, e.g. {ImageID}; {{ and }} "
                    "for braces themselves)"
                )
            names.add(name)
        unknown = sorted(names - set(columns))
        if unknown:
            raise ValueError(
                f"--url-template names unknown column(s) {', '.join(unknown)}; "
                f"columns: {', '.join(columns)}"
            )

    def outcome_key(self) -> str:
        """The options that decide what a task yields (not how fast or how
        patiently): a shard done under the same key need not be redone."""
        return repr(
            (
                self.source,
                self.url_template,
                self.verify,
                self.max_pixels,
                self.max_decode_memory,
                self.full_decode,
                self.policy.placeholder_md5,
                self.phash,
            )
        )

    def same_bytes_as(self, other: dict) -> bool:
        """Whether an earlier run with these fetch options (as in its manifest)
        downloaded the same bytes: same URL choice and verification."""
        return all(
            other.get(name) == getattr(self, name)
            for name in ("source", "url_template", "verify")
        )
