"""`_SUCCESS` records the SHA-256 of the manifest it completes, in the form
`sha256sum` writes, and reads back: None from a `_SUCCESS` of before, an error
for a digest line that is not one."""

from __future__ import annotations

import hashlib

import pytest

from oibeam.transforms.publish.publish_snapshot import (
    manifest_digest,
    publish,
    read_latest,
    recorded_digest,
)


def test_publish_records_the_manifest_digest_in_success(tmp_path):
    directory = tmp_path / "root" / "s1"
    directory.mkdir(parents=True)
    manifest = b'{"tables": {}, "rows": {}, "inputs": []}\n'
    (directory / "manifest.json").write_bytes(manifest)
    expected = read_latest(str(tmp_path / "root"))
    publish(str(directory / "manifest.json"), str(tmp_path / "root"), "s1", expected)
    text = (directory / "_SUCCESS").read_text()
    digest = hashlib.sha256(manifest).hexdigest()
    assert manifest_digest(manifest) == digest
    assert text.splitlines()[1:] == [f"{digest}  manifest.json"]
    assert text.startswith("# published ")
    assert recorded_digest(text) == digest


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-30T10:00:00.000000+00:00\n",
        "# published today\n",
        "# manifest.json was not hashed then\n",
    ],
    ids=["empty", "timestamp", "comment", "comment-naming-it"],
)
def test_a_success_of_before_records_no_digest(text):
    assert recorded_digest(text) is None


@pytest.mark.parametrize(
    "line",
    [
        "abc  manifest.json",
        f"{'0' * 64} manifest.json.bak",
        f"{'0' * 63}  manifest.json",
        f"{'0' * 64}  manifest.json\n{'1' * 64}  manifest.json",
    ],
)
def test_a_digest_line_that_is_not_one_is_an_error(line):
    with pytest.raises(ValueError, match="manifest.json"):
        recorded_digest(f"# published today\n{line}\n")


def test_the_binary_mark_of_sha256sum_is_read_too():
    digest = "a" * 64
    assert recorded_digest(f"{digest} *manifest.json\n") == digest
