"""A small release whose snapshot exercises every section of the report: markup
in display names, images gone and changed, two hosts, a label that stops being
trainable."""

from __future__ import annotations

from pathlib import Path

from oibeam.tools.report.write_report import REPORT

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release

# Display names with markup in them: the page must show them as text.
CAT = '<b>Cat</b> & "Kitty"'
DOG = "<script>alert('dog')</script>Dog"
CLASSES = {"/m/cat": CAT, "/m/dog": DOG, "/m/car": "Car"}
# Trainable with >= 3 train images (machine) and no validation minimum.
RULE = ["--min-train-images", "3", "--min-validation-images", "0"]


class TwoHosts(Release):
    """Serves some photos as http://localhost:PORT/... (a second host)."""

    def __init__(self, server, directory: Path, prefix: str, local: set[str]):
        super().__init__(server, directory, prefix)
        self.local = local

    def url(self, photo: Photo) -> str:
        url = super().url(photo)
        return (
            url.replace("127.0.0.1", "localhost")
            if photo.image_id in self.local
            else url
        )


def write_classes(flags: list[str]) -> None:
    """Replaces the release's dict.csv with CLASSES (quotes doubled, as in CSV)."""
    path = Path(flags[flags.index("--classes") + 1])
    path.write_text(
        "".join(
            f'"{m}","{n.replace(chr(34), chr(34) * 2)}"\n' for m, n in CLASSES.items()
        )
    )


def release_flags(server, directory: Path) -> list[str]:
    """11 images: cat (machine) on 1-10, dog on 1-4, car on 11; 5 and 6 are
    validation images where a human confirmed cat on 5 and rejected it on 6.
    1 and 9 are gone, 2 changed; 9 and 10 are on a second host. Dog has 4 train
    images, 2 of them ok: it stops being trainable (>= 3)."""
    ids = [f"{i:016x}" for i in range(1, 12)]
    release = TwoHosts(server, directory, "report", local={ids[8], ids[9]})
    for n, image_id in enumerate(ids[:10]):
        labels = [("/m/cat", 0.9)] + ([("/m/dog", 0.8)] if n < 4 else [])
        subset = "validation" if n in (4, 5) else "train"
        release.add(Photo(image_id, seed=300 + n, labels=labels, subset=subset))
    release.add(Photo(ids[10], seed=320, labels=[("/m/car", 0.7)]))
    release.photos[ids[0]].route = "/status/404/{name}"
    release.photos[ids[1]].route = "/wrong/{name}"
    release.photos[ids[8]].route = "/status/410/{name}"
    flags = release.write()
    write_classes(flags)
    labels = Path(flags[flags.index("--labels") + 1])
    with labels.open("a") as f:
        f.write(f"{ids[4]},human,/m/cat,1\n{ids[5]},human,/m/cat,0\n")
    return flags


def build_snapshot(server, directory: Path) -> Path:
    """A published snapshot ROOT (snapshot `s1`) of the release above, without
    its report (the tests write it)."""
    flags = release_flags(server, directory / "release")
    root = directory / "snapshots"
    args = ["--output", root, "--snapshot-id", "s1", "--no-report"]
    assert run_cli("snapshot", *flags, *RULE, *FLAGS, *args) == 0
    assert not (root / "s1" / REPORT).exists()
    return root
