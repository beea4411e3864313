"""images.csv lines: Flickr-like metadata full of CSV traps.

The free-text columns (AuthorProfileURL, Author, Title) are always quoted;
the vocabulary below is already RFC 4180 escaped (any '"' doubled) and keeps
Flickr's undecoded HTML entities, so the pools hold finished field bytes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import numpy as np

from oibeam.tools.sample.fields import (
    Part,
    blank,
    choice,
    concat,
    digits,
    either,
    pool,
    random_hex,
    random_md5,
)
from oibeam.tools.sample.served import pool_index

_NEWLINE_RATE = 1e-5  # titles with a newline inside the quoted field
_THUMBNAIL_MISSING = 0.05
_SIZE_MEDIAN, _SIZE_SIGMA, _SIZE_MIN, _SIZE_MAX = 1.5e6, 0.75, 20_000, 15_000_000
_LICENSES = {
    "https://creativecommons.org/licenses/by/2.0/": 0.94,
    "https://creativecommons.org/licenses/by/2.5/": 0.01,
    "https://creativecommons.org/licenses/by/3.0/": 0.03,
    "https://creativecommons.org/licenses/by/4.0/": 0.02,
}
_FIRST_NAMES = (
    "Anna Ben Carla David Emma Frank Grace Hiro Ines Jack Kate Liam Maria Nils "
    "Olga Paul Quinn Rosa Sam Tara Umar Vera Will Yuki Zoe Peter Chris Laura "
    "Mike Sarah Tom Linda Marco Elena Ivan Nadia Omar Lucy Raj Mei "
    "José Zoë François Søren Łukasz Renée Björn Ana&#x27;s Дмитрий 太郎 Çağla"
).split()
_LAST_NAMES = (
    "Smith Jones Brown Taylor Wilson Clark Lewis Walker Young King Wright Hill "
    "Green Baker Adams Nelson Carter Mitchell Roberts Turner Phillips Campbell "
    "Parker Evans Edwards Collins Stewart Morris Rogers Reed Cook Bell Murphy "
    "Müller García Nuñez Øster Kowalski Dubois Rossi Novák Şahin Ibáñez "
    "O&#x27;Brien D&#x27;Angelo O&#x27;Neill Photography Photos"
).split()
_AUTHOR_JOINS = {
    " ": 0.82,
    "": 0.08,
    " &amp; ": 0.05,
    " van ": 0.02,
    ' ""Doc"" ': 0.015,
    ' ""the lens"" ': 0.015,
}
_HANDLES = (
    "photo pixel lens shutter light wander blue red green sky sea mountain city "
    "street urban wild night sun moon star cloud river stone tree bird cat dog "
    "travel snap frame focus retro film mono color dream happy little big"
).split()
_TITLE_WORDS = (
    "sunset beach mountain lake river city street night morning evening old new "
    "house church bridge tower park garden flower tree forest bird cat dog horse "
    "car train boat airplane market festival parade concert wedding birthday "
    "party family friends kids portrait selfie view from the of at in on and with "
    "my our at home trip vacation holiday summer winter spring autumn snow rain "
    "fog light shadow blue red green yellow black white reflections sky clouds "
    "sea harbour castle museum statue fountain square road path trail hike "
    "camping sunrise dusk downtown skyline graffiti wall window door stairs "
    "2007 2008 2009 2010 2011 2012 2013 2014 2015 Day 1 2 3 #1 #2 no. part "
    "Paris, London, Berlin, Tokyo, Rome, morning, day, 2010, 2012, "
    "café Zürich São Kraków Málaga naïve fiancée crème brûlée Ñandú 東京 Москва "
    "Ελλάδα ☀ &amp; Tom&#x27;s &#x27;s &quot;here&quot; "
    '""Untitled"" ""Home"" ""Best ""Friends"" ""quoted,"" 5""x7"" 12"" '
).split()
_CAMERA_PREFIXES = ("IMG_", "DSC_", "DSCN", "DSC0", "P100", "_MG_", "IMG-")
_NEWLINE_TOKEN = "\npart two"


def _people(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Fields ``{user}/`` and ``{user}/","{author}","`` of ``count`` Flickr users
    (user: NSID or alias; author: free text, escaped, entities undecoded)."""
    nsid = concat(
        [
            digits(rng.integers(10**7, 10**8, count), 8),
            b"@N0",
            digits(rng.integers(0, 9, count), 1),
        ],
        count,
    )
    handles = pool(_HANDLES)
    number = digits(rng.integers(0, 10_000, count), 4)
    alias = concat(
        [
            handles[rng.integers(0, len(handles), count)],
            handles[rng.integers(0, len(handles), count)],
            blank(number, rng.random(count) < 0.4),
        ],
        count,
    )
    user = either(rng.random(count) < 0.45, nsid, alias)
    joins = tuple(_AUTHOR_JOINS)
    join = choice(rng, tuple(_AUTHOR_JOINS.values()), count)
    firsts, lasts = pool(_FIRST_NAMES), pool(_LAST_NAMES)
    first = firsts[rng.integers(0, len(firsts), count)]
    last = either(  # "Mike &amp; Anna", not "Mike &amp; Smith"
        join == joins.index(" &amp; "),
        firsts[rng.integers(0, len(firsts), count)],
        lasts[rng.integers(0, len(lasts), count)],
    )
    author = [first, pool(joins)[join], blank(last, join == joins.index(""))]
    landing = concat([user, b"/"], count)
    profile = concat([user, b'/","', *author, b'","'], count)
    return landing, profile


def _phrases(rng: np.random.Generator, count: int, lead: str) -> list[str]:
    """``count`` title fragments of 1-3 words (at most 30 bytes) after ``lead``;
    capitalised when ``lead`` is empty."""
    out: list[str] = []
    while len(out) < count:
        picks = rng.integers(0, len(_TITLE_WORDS), (count, 3)).tolist()
        sizes = (1 + choice(rng, (45, 35, 20), count)).tolist()
        for pick, size in zip(picks, sizes, strict=True):
            text = " ".join(_TITLE_WORDS[i] for i in pick[:size])
            text = lead + (text if lead else text[:1].upper() + text[1:])
            if len(text.encode()) <= 30 and len(out) < count:
                out.append(text)
    return out


@dataclass(frozen=True)
class ImagePools:
    """Field pools every chunk draws its images.csv parts from."""

    subsets: np.ndarray  # [is_validation] ",train,{url_base}" etc.
    landings: np.ndarray  # [user] "{user}/"
    licenses: np.ndarray  # ',{license},"https://www.flickr.com/people/'
    profiles: np.ndarray  # [user] '{user}/","{author}","'
    cameras: np.ndarray  # row 0 empty, then "IMG_" etc.
    title_heads: np.ndarray  # row 0 empty, then 1-3 capitalised words
    title_tails: np.ndarray  # row 0 empty, then " words", last the newline
    served: tuple[np.ndarray, np.ndarray] | None = None  # pool (sizes, md5s) fields

    @classmethod
    def of(
        cls,
        rng: np.random.Generator,
        images: int,
        url_base: str,
        served: list[bytes] | None = None,
    ) -> ImagePools:
        """Pools for a release of ``images`` images (~1 user per 8 images);
        ``served``: the pool of images a SampleServer serves for them."""
        landings, profiles = _people(rng, int(np.clip(images // 8, 64, 200_000)))
        if served is not None:
            sizes = digits(np.array([len(d) for d in served], dtype=np.int64), 8)
            md5s = pool(
                [base64.b64encode(hashlib.md5(d).digest()).decode() for d in served]
            )
            served = (sizes, md5s)
        return cls(
            subsets=pool([",train," + url_base, ",validation," + url_base]),
            landings=landings,
            licenses=pool([f',{x},"https://www.flickr.com/people/' for x in _LICENSES]),
            profiles=profiles,
            cameras=pool(["", *_CAMERA_PREFIXES]),
            title_heads=pool(["", *_phrases(rng, 4096, "")]),
            title_tails=pool(["", *_phrases(rng, 4096, " "), _NEWLINE_TOKEN]),
            served=served,
        )


def _titles(
    rng: np.random.Generator, pools: ImagePools, n: int, force_newline: bool
) -> list[np.ndarray]:
    """Title fields: ~15% camera file names, ~8% empty, else 1-6 words (commas,
    doubled quotes, UTF-8, entities; ~1e-5 of them with a newline)."""
    kind = choice(rng, (15, 8, 77), n)  # camera, empty, words
    newline = rng.random(n) < _NEWLINE_RATE
    if force_newline:
        newline[rng.integers(0, n)] = True
    kind[newline] = 2
    camera, words = kind == 0, kind == 2
    head = rng.integers(1, len(pools.title_heads), n) * words
    tail = rng.integers(0, len(pools.title_tails) - 1, n) * words
    tail[newline] = len(pools.title_tails) - 1
    prefix = rng.integers(1, len(pools.cameras), n) * camera
    number = digits(rng.integers(0, 10_000, n), 4, zero_fill=True)
    return [
        pools.cameras[prefix],
        blank(number, ~camera),
        pools.title_heads[head],
        pools.title_tails[tail],
    ]


def _thumbnail_urls(
    rng: np.random.Generator, photo: np.ndarray, secret: np.ndarray
) -> np.ndarray:
    """Thumbnail300KURL field, empty for ~5% of the rows."""
    n = len(photo)
    url = concat(
        [
            b"https://c1.staticflickr.com/",
            digits(rng.integers(1, 10, n), 1),
            b"/",
            digits(rng.integers(1000, 10_000, n), 4),
            b"/",
            photo,
            b"_",
            secret,
            b"_z.jpg",
        ],
        n,
    )
    return blank(url, rng.random(n) < _THUMBNAIL_MISSING)


def image_parts(
    pools: ImagePools,
    rng: np.random.Generator,
    ids: np.ndarray,
    hexid: np.ndarray,
    validation: np.ndarray,
    force_newline: bool,
    thumbnail_rng: np.random.Generator | None,
) -> list[Part]:
    """Parts of images.csv lines with ImageIDs ``hexid``; a Thumbnail300KURL
    column (from its own stream, so the others stay the same) if
    ``thumbnail_rng`` is given."""
    n = len(hexid)
    photo = digits(rng.integers(10**9, 3 * 10**10, n), 11)
    secret = random_hex(rng, n, 10)
    person = (rng.random(n) ** 2 * len(pools.profiles)).astype(np.int64)
    license_ = choice(rng, tuple(_LICENSES.values()), n)
    title = _titles(rng, pools, n, force_newline)
    size = rng.lognormal(np.log(_SIZE_MEDIAN), _SIZE_SIGMA, n)
    size = digits(np.clip(size, _SIZE_MIN, _SIZE_MAX).astype(np.int64), 8)
    md5 = random_md5(rng, n)
    url: list[Part] = [photo, b"_", secret, b"_o.jpg"]
    if pools.served is not None:  # OriginalURL and checksums of served images
        which = pool_index(ids)
        url = [hexid, b".jpg"]
        size, md5 = (pools.served[0], which), (pools.served[1], which)
    parts: list[Part] = [
        hexid,
        (pools.subsets, validation.astype(np.int64)),
        *url,
        b",https://www.flickr.com/photos/",
        (pools.landings, person),
        photo,
        (pools.licenses, license_),
        (pools.profiles, person),
        *title,
        b'",',
        size,
        b",",
        md5,
    ]
    if thumbnail_rng is not None:
        parts += [b",", _thumbnail_urls(thumbnail_rng, photo, secret)]
    parts.append(b"\n")
    return parts
