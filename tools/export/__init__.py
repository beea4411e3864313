"""`oibeam export`: files for training and redistribution, from a run's ok images.

`reader` streams the ok images of a fetch or snapshot run, sorted by ImageID,
with their place in the shards; one module per format writes them:
`training_list` (Tencent ML-Images style), `jsonl`, `coco`, `attribution`,
and `files` (the images as plain files; their pixels in `files_image`).
Each format owns a directory under the export directory; `base` holds what
they share (atomic streaming files, the sweep of stale files).
"""
