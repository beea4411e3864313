"""Where the committed fixture files are."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL = FIXTURES / "realdata" / "openimages"
V3 = REAL / "v3_2017_11"
V3_IMAGES = V3 / "train" / "images.csv"
V3_HUMAN = V3 / "train" / "annotations-human.csv"
V3_MACHINE = V3 / "train" / "annotations-machine.csv"
V3_CLASSES = V3 / "class-descriptions.csv"
V1_DICT = REAL / "v1_2016_08" / "dict.csv"
# Real image files (see images/PROVENANCE.md), served by `fault_server`.
IMAGES = FIXTURES / "images"
