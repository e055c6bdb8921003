"""Constants shared by every part of smilejax: one place for each.

AU order: ../shared/spec/auda.md section 1 (the AUDA replication data's pair order, OpenFace's 18 intensity AUs
without AU28). Label coding: 0 posed (deliberate), 1 spontaneous (genuine), as the official RealSmileNet code.
"""

AU_NUMBERS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AU_NAMES: tuple[str, ...] = tuple(f"AU{n:02d}" for n in AU_NUMBERS)
AU_INTENSITY_COLUMNS: tuple[str, ...] = tuple(f"{name}_r" for name in AU_NAMES)
# OpenFace 2.x presence outputs: the 17 above plus AU28 (presence only), in OpenFace's own order.
AU_PRESENCE_COLUMNS: tuple[str, ...] = tuple(f"AU{n:02d}_c" for n in sorted(AU_NUMBERS + (28,)))
NUM_AUS = len(AU_NUMBERS)  # 17
AU_INDEX: dict[int, int] = {n: i for i, n in enumerate(AU_NUMBERS)}

LABEL_POSED = 0
LABEL_SPONTANEOUS = 1
LABEL_NAMES = {LABEL_POSED: "posed", LABEL_SPONTANEOUS: "spontaneous"}
# UvA-NEMO id kinds: "NNN_deliberate_smile_k" (posed) and "NNN_spontaneous_smile_k".
KIND_TO_LABEL = {"deliberate": LABEL_POSED, "spontaneous": LABEL_SPONTANEOUS}

BASE_FPS = 50  # UvA-NEMO frame rate; AUDA windows are given at this rate
NUM_FOLDS = 10

# Phase labels of the AUDA phase detector (auda.md section 5).
PHASE_NONE, PHASE_ONSET, PHASE_APEX, PHASE_OFFSET = 0, 1, 2, 3

# Corpus layout on disk, shared by UvA-NEMO folders and the synthetic corpus (smilejax/io/nemo.py reads it).
VIDEO_DIR = "videos"  # <id>.mp4
OPENFACE_DIR = "openface"  # <id>.csv  (OpenFace 2.x FeatureExtraction output)
SMILE_INTENSITY_DIR = "smile_intensities"  # <id>_smile_intensities.txt (one value per line)
FOLDS_DIR = "folds"  # P_fold_all_k.txt / S_fold_all_k.txt; package lists if absent
SMILE_INTENSITY_SUFFIX = "_smile_intensities.txt"
CROPS_DIR = "crops"  # <id>.npy: aligned face crops, uint8 [T, H, W, 3] (bin/extract_aus)
AU_SOURCE_SUFFIX = ".au_source.json"  # openface/<id>.au_source.json: who wrote the CSV (bin/extract_aus)
