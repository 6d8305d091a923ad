"""Paired counterparts in `celebamask_synthetic`: each validation and test face redrawn with one
local attribute flipped, stored beside it; train faces hold none."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
from scipy import ndimage
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

import tfds_celebamask
from tfds_celebamask import synthetic
from tfds_celebamask.celebamask import layout

# The session's small dataset (conftest.synthetic_data_dir): 96 faces drawn at 256 px, seed 3.
NAME, SEED, SOURCE, R = "celebamask_synthetic/64_n96_s3", 3, 256, 64
ATTRIBUTES = synthetic.COUNTERPART_ATTRIBUTES


def _source(data_dir, split: str, **kwargs):
    return tfds.data_source(NAME, split=split, data_dir=os.fspath(data_dir), download=False,
                            **kwargs)


@pytest.fixture(scope="module")
def paired(synthetic_data_dir) -> list[dict]:
    """Every validation and test example of the small dataset."""
    return [ex for split in ("validation", "test") for ex in _source(synthetic_data_dir, split)]


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Grows `mask` by `steps` pixels, diagonals included."""
    return ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=steps)


def _region(face: synthetic.SyntheticFace, flipped: synthetic.SyntheticFace,
            attribute: str) -> np.ndarray:
    """Where the flip may change the face, at R px: the parts of the attribute's guide mask in
    either drawing (opening the mouth grows it, a smile moves the lips' corners, narrowing the
    eyes shrinks them), any mask pixel of which touches the stored pixel.

    Bangs on a face drawn bald gives it hair back (the one flip whose consequences reach
    further, see synthetic._decide_attributes), and the hair's colour then colours the brows
    and the eyes' upper lids too: those parts join the region.
    """
    # A hat hides the hair and forehead it covers, but those pixels are the hat's part; glasses'
    # tinted lenses tint the eyes they cover, but they are the glasses' part too.
    parts = list(layout.GUIDE_MASK_PARTS[layout.ATTRIBUTE_GUIDE_MASK[attribute]])
    if face.attributes["Bald"] != flipped.attributes["Bald"]:
        parts += [*layout.GUIDE_MASK_PARTS["brows"], *layout.GUIDE_MASK_PARTS["eyes"]]
    m = SOURCE // 2
    union = np.zeros((m, m), bool)
    for drawn in (face, flipped):
        for part in parts:
            if part in drawn.parts:
                union |= drawn.parts[part]
    f = m // R
    return union.reshape(R, f, R, f).any((1, 3))


def test_the_counterpart_flips_its_attribute_and_keeps_the_others():
    for k in range(12):
        face = synthetic.draw_face(k, 64, seed=SEED)
        for attribute in ATTRIBUTES:
            # Forcing the value the face has redraws it pixel for pixel: any difference in a
            # counterpart comes from the flip.
            same = synthetic.draw_face(k, 64, seed=SEED,
                                       overrides={attribute: face.attributes[attribute]})
            assert np.array_equal(same.image, face.image), (k, attribute)
            flipped = synthetic.draw_face(k, 64, seed=SEED,
                                          overrides={attribute: not face.attributes[attribute]})
            changed = {n for n in layout.ATTRIBUTE_NAMES
                       if flipped.attributes[n] != face.attributes[n]}
            # Bangs gives a face drawn bald its hair back, and so a hair colour.
            follows = ({"Bald", "Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair"}
                       if attribute == "Bangs" else set())
            assert attribute in changed and changed - {attribute} <= follows, (k, attribute)


def test_train_examples_hold_no_counterpart_and_validation_and_test_exactly_one(
        synthetic_data_dir):
    builder = tfds.builder(NAME, data_dir=os.fspath(synthetic_data_dir))
    assert str(builder.info.version) == "1.1.0"
    counterparts = builder.info.features["counterparts"]
    assert set(counterparts.keys()) == set(ATTRIBUTES)
    for split, count in (("train", 0), ("validation", 1), ("test", 1)):
        source = _source(synthetic_data_dir, split)
        for ex in source:
            for attribute in ATTRIBUTES:
                assert ex["counterparts"][attribute].shape == (count, R, R, 3), (split, attribute)
                assert ex["counterparts"][attribute].dtype == np.uint8
        # Read raw, as an evaluator may: empty bytes for train, R * R * 3 otherwise.
        raw = _source(synthetic_data_dir, split,
                      deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
        feature = tf_example_pb2.Example.FromString(raw[0]).features.feature
        for attribute in ATTRIBUTES:
            (stored,) = feature[f"counterparts/{attribute}"].bytes_list.value
            assert len(stored) == count * R * R * 3, (split, attribute)


def test_train_faces_get_no_counterpart_files(synthetic_data_dir):
    root = os.path.join(synthetic_data_dir, "downloads", "celebamask_synthetic",
                        f"faces_n96_size{SOURCE}_s{SEED}")
    for k, name in enumerate(synthetic.celeba_files(96, SEED)):
        for attribute in ATTRIBUTES:
            exists = os.path.exists(synthetic.counterpart_path(root, attribute, k))
            assert exists == (layout.split_of(name) != "train"), (k, attribute)


def test_the_counterpart_is_read_exactly_as_the_image(synthetic_data_dir, paired):
    root = os.path.join(synthetic_data_dir, "downloads", "celebamask_synthetic",
                        f"faces_n96_size{SOURCE}_s{SEED}")
    for ex in paired:
        k = int(ex["index"])
        np.testing.assert_array_equal(ex["image"], layout.load_image(layout.image_path(root, k), R))
        for attribute in ATTRIBUTES:
            np.testing.assert_array_equal(
                ex["counterparts"][attribute][0],
                layout.load_image(synthetic.counterpart_path(root, attribute, k), R))


def test_a_counterpart_differs_from_its_face_only_inside_the_attributes_region(paired):
    assert len(paired) >= 15
    for ex in paired:
        k = int(ex["index"])
        face = synthetic.draw_face(k, SOURCE, seed=SEED)
        image = ex["image"].astype(int)
        for attribute in ATTRIBUTES:
            flipped = synthetic.draw_face(k, SOURCE, seed=SEED,
                                          overrides={attribute: not face.attributes[attribute]})
            region = _region(face, flipped, attribute)
            diff = np.abs(ex["counterparts"][attribute][0].astype(int) - image).max(-1)
            # The attribute visibly changed (the least of these maxima is 40 here; thin
            # glasses frames on light skin change least).
            assert diff[region].max() > 25, (k, attribute)
            # Elsewhere JPEG noise at most, once the region is grown by 3 stored pixels (12
            # source pixels: a changed pixel moves the JPEG blocks around it, and the Lanczos
            # reduction spreads them). Measured: at most 2 levels at 3 px, 0 at 6 px.
            outside = ~_dilate(region, 3)
            assert diff[outside].max() <= 3, (k, attribute, diff[outside].max())


def test_a_faces_folder_drawn_before_counterparts_is_drawn_again(tmp_path):
    builder = tfds_celebamask.build_synthetic(os.fspath(tmp_path / "old"), resolution=64,
                                              num_faces=3, seed=1)
    root = os.path.join(tmp_path, "old", "downloads", "celebamask_synthetic",
                        f"faces_n3_size{SOURCE}_s1")
    assert os.path.exists(synthetic.counterpart_path(root, "Smiling", 1))  # face 1: validation
    # As builder 1.0.0 left it: complete, but without counterparts.
    shutil.rmtree(os.path.join(root, synthetic.COUNTERPART_DIR))
    shutil.rmtree(builder.data_dir)
    tfds_celebamask.build_synthetic(os.fspath(tmp_path / "old"), resolution=64, num_faces=3,
                                    seed=1)
    example = tfds.data_source("celebamask_synthetic/64_n3_s1", split="validation",
                               data_dir=os.fspath(tmp_path / "old"), download=False)[0]
    assert example["counterparts"]["Smiling"].shape == (1, R, R, 3)


def test_build_synthetic_builds_a_standard_config_by_its_name(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_celebamask.CelebAMaskSynthetic, "download_and_prepare",
                        lambda self, **_: None)
    builder = tfds_celebamask.build_synthetic(os.fspath(tmp_path), resolution=64)
    assert builder.builder_config is tfds_celebamask.CelebAMaskSynthetic.BUILDER_CONFIGS[0]
    assert builder.builder_config.num_faces == 4000


def test_the_synthetic_encoder_reaches_spawned_workers_by_name(tmp_path):
    # The builder's worker processes receive it pickled: a lambda or closure would fail there.
    builder = tfds.builder("celebamask_synthetic/64_n3_s1", data_dir=os.fspath(tmp_path))
    encode = builder._face_encoder()
    assert pickle.loads(pickle.dumps(encode)) is encode
