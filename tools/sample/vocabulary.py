"""The label vocabulary: Freebase-like mids, display names and dict.csv."""

from __future__ import annotations

import numpy as np

from oibeam.tools.sample.fields import choice, stream

_EXTRA_MIDS = 37 / 7844  # V1 dict.csv: 7,881 mids, 7,844 of them used
_MID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz_"
_SYLLABLES = (
    "ba ter lo mi son ca del ri van to ne pa ru kin ar bel co da fen gor hu is "
    "jor ka lum mor nel or pin ras sel tam ul ver wen xi yor zan bro chi ster"
).split()
_ACCENTED = ("é", "ü", "ñ", "ø", "ç", "ö", "å", "ł")


def _mids(rng: np.random.Generator, total: int) -> list[str]:
    """``total`` distinct, sorted Freebase-like mids, a few of them ``/g/1...``."""
    alphabet = np.array(list(_MID_ALPHABET))
    found: dict[str, None] = {}
    while len(found) < total:
        size = 2 * (total - len(found)) + 8
        chars = alphabet[rng.integers(0, len(alphabet), (size, 8))].tolist()
        length = (4 + choice(rng, (25, 60, 15), size)).tolist()
        google = rng.random(size) < 0.003
        google[0] |= not found and total >= 10  # at least one /g/1 mid
        for row, n, g in zip(chars, length, google.tolist(), strict=True):
            found.setdefault("/g/1" + "".join(row) if g else "/m/0" + "".join(row[:n]))
            if len(found) == total:
                break
    return sorted(found)


def _display_names(rng: np.random.Generator, total: int) -> list[str]:
    """Synthetic lowercase display names; some repeated, some with a comma or
    a non-ASCII letter (as in the real dict.csv)."""
    unique: dict[str, None] = {}
    while len(unique) < total:
        size = total - len(unique) + 16
        syllables = rng.integers(0, len(_SYLLABLES), (size, 3, 3)).tolist()
        lengths = (2 + (rng.random((size, 3)) < 0.4)).tolist()
        words = (1 + choice(rng, (50, 35, 15), size)).tolist()
        for syl, length, n in zip(syllables, lengths, words, strict=True):
            word = (
                "".join(_SYLLABLES[s] for s in syl[w][: length[w]]) for w in range(n)
            )
            unique.setdefault(" ".join(word))
            if len(unique) == total:
                break
    names = list(unique)
    few = max(1, total // 100) if total >= 10 else 0
    special = rng.permutation(total).tolist()
    accents = rng.integers(0, len(_ACCENTED), few).tolist()
    for i, a in zip(special[:few], accents, strict=True):
        cut = len(names[i]) // 2
        names[i] = names[i][:cut] + _ACCENTED[a] + names[i][cut + 1 :]
    for i, j in zip(special[few : 2 * few], special[::-1], strict=False):
        names[i] = f"{names[i]}, {names[j].split()[0]}"
    for i, j in zip(special[2 * few : 4 * few], special[::-1], strict=False):
        names[i] = names[j]
    return names


def vocabulary(
    seed: int, num_labels: int
) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """dict.csv mids and display names (~0.5% more mids than used), the used
    mids, and the Zipf frequency rank of each used mid (a seeded permutation)."""
    rng = stream(seed, 0)
    total = num_labels + max(1, round(num_labels * _EXTRA_MIDS))
    mids, names = _mids(rng, total), _display_names(rng, total)
    used = np.sort(rng.choice(total, num_labels, replace=False)).tolist()
    return mids, names, [mids[i] for i in used], rng.permutation(num_labels)


def write_dictionary(path: str, mids: list[str], names: list[str]) -> None:
    """dict.csv: no header, both fields always quoted."""
    lines = (
        '"' + m + '","' + n.replace('"', '""') + '"\n'
        for m, n in zip(mids, names, strict=True)
    )
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(lines))
