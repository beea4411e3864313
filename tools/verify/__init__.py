"""`oibeam verify RUN`: check a run offline against its own manifest.

Every kind of run the product writes (`oibeam tables`, `fetch`, `snapshot`,
told apart by what its manifest records), as far as that kind goes:

- the manifest is one oibeam writes, and every path it lists stays inside the
  run's directory (any other is a problem and is never read); a snapshot has
  `_SUCCESS`, and the manifest's SHA-256 is the one `_SUCCESS` records;
- every file the manifest lists is there (a snapshot's pooled shards
  included, wherever in ROOT/pool they are), with its size, checksum (MD5, or
  CRC-32C for tar shards, read in chunks; a shard `oibeam gc` erased images
  from is checked against its erasure record) and row count (Parquet and
  CSV); no other file sits in the run's table and shard directories; each
  table's files add up to its rows;
- the inputs reconcile: rows read == kept + rejected per input file, and the
  rejected rows == the manifest's rejected_by_code == tables/errors, code by
  code; a tables run keeps every images row it did not reject; the labels
  label_stats marks trainable are those of trainable_labels.csv;
- fetch and snapshot runs: statuses in the images table == the manifest's
  counts == selected images; ok images == shard index rows == tar samples;
  diff rows == the manifest's changes; with `--deep`, every ok image's bytes,
  read from its shard at the index's offset, have the size and, where it was
  checked so, the MD5 (OriginalMD5) of the release.
What does not apply is said in a note: a tables run fetched no images; tables
and fetch runs write no `_SUCCESS`, so their manifests are not signed, nor are
those of snapshots published before `_SUCCESS` recorded a digest.
`--quick` checks presence, sizes and row counts without reading every byte.
`report.html` and `exports/` are derived from the run (`oibeam report`,
`oibeam export` rewrite them at will) and are not part of what is verified.

verify_run reads the manifest and the run's kind and puts the checks together;
listing says which listed files can be read, files checks them one by one,
counts checks that the numbers reconcile; findings is the Report.
"""
