"""Dataset loaders: identity-labelled faces, labelled scenes, and video clips.

Every loader returns RGB uint8 images (H, W, 3) and raises ``DatasetError`` naming the folder
and the layout it expected when a folder does not fit.
"""

from lifeveil.data.datasets import (
    LFW_TRAIN_IDENTITIES,
    ORL_TRAIN_IDENTITIES,
    ClipInfo,
    LabelledImages,
    lfw_identity_split,
    load_action_clips,
    load_csv_images,
    load_image_folder,
    load_lfw,
    load_orl,
    load_sun8,
    sun8_split,
)

__all__ = [
    "LFW_TRAIN_IDENTITIES",
    "ORL_TRAIN_IDENTITIES",
    "ClipInfo",
    "LabelledImages",
    "load_action_clips",
    "load_csv_images",
    "load_image_folder",
    "load_lfw",
    "lfw_identity_split",
    "load_orl",
    "load_sun8",
    "sun8_split",
]
