"""CSV header lines as the Open Images releases publish them (no line ending).

Typed out here, never taken from oibeam.schemas: tests check that code against
these. Split on "," for the column names.
"""

from __future__ import annotations

# images.csv of V1 (2016); V2 and V3 add Thumbnail300KURL.
V1_IMAGES_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,"
    "Title,OriginalSize,OriginalMD5"
)
# The images CSVs of V4 and later (with Rotation).
V4_IMAGES_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,"
    "Title,OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation"
)
# Image-level labels, human or machine, every release.
LABELS_HEADER = "ImageID,Source,LabelName,Confidence"
# Bounding boxes in their 8-column form (V3); V4 and later add five flag columns.
BOXES_HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax"
