"""The `celebamask` builder reads the real CelebAMask-HQ format (19 real faces, read in place)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLE, build_from, needs_sample, run_without_tensorflow
from tfds_celebamask.celebamask import layout

pytestmark = needs_sample

RESOLUTION = 64


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("sample_tfds")
    build_from(SAMPLE, data_dir, str(RESOLUTION))
    return data_dir


@pytest.fixture(scope="module")
def examples(sample_dir):
    import tensorflow_datasets as tfds

    sources = tfds.data_source(f"celebamask/{RESOLUTION}", data_dir=os.fspath(sample_dir),
                               download=False)
    return {split: {int(ex["index"]): ex for ex in source} for split, source in sources.items()}


def _attribute_rows():
    """The sample's attribute file, parsed here independently of layout.read_attributes."""
    with open(SAMPLE / layout.ATTRIBUTE_FILE) as f:
        lines = f.read().splitlines()
    names = lines[1].split()
    return {int(fields[0][:-4]): dict(zip(names, (v == "1" for v in fields[1:])))
            for fields in (line.split() for line in lines[2:] if line.strip())}


def _part(k: int, part: str) -> np.ndarray:
    path = SAMPLE / layout.MASK_DIR / str(k // 2000) / f"{k:05d}_{part}.png"
    if not path.exists():
        return np.zeros((512, 512), bool)
    return np.asarray(Image.open(path))[..., 0] > 0


def test_the_splits_follow_celebas_partition_of_the_original_files(examples):
    assert set(examples["test"]) == {4, 1402}
    assert set(examples["validation"]) == {13, 17, 12974}
    assert len(examples["train"]) == 14
    assert examples["test"][4]["celeba_file"].decode() == "202041.jpg"


def test_the_full_mapping_file_splits_24183_2993_2824():
    mapping = layout.read_mapping(SAMPLE / "full_annotations" / layout.MAPPING_FILE)
    counts = {s: 0 for s in layout.SPLITS}
    for celeba_file in mapping.values():
        counts[layout.split_of(celeba_file)] += 1
    assert counts == {"train": 24183, "validation": 2993, "test": 2824}


def test_the_full_attribute_file_parses_with_47_percent_mouths_open():
    rows = layout.read_attributes(SAMPLE / "full_annotations" / layout.ATTRIBUTE_FILE)
    assert len(rows) == 30000
    share = np.mean([r[layout.ATTRIBUTE_NAMES.index("Mouth_Slightly_Open")]
                     for r in rows.values()])
    assert share == pytest.approx(0.471, abs=0.001)


def test_attributes_match_the_annotation_file(examples):
    rows = _attribute_rows()
    for split in examples.values():
        for k, ex in split.items():
            assert {n: bool(v) for n, v in ex["attributes"].items()} == rows[k], k


def test_the_mouth_guide_mask_is_the_union_of_the_three_lip_and_mouth_parts(examples):
    block = 512 // RESOLUTION
    checked = 0
    for split in examples.values():
        for k, ex in split.items():
            union = _part(k, "u_lip") | _part(k, "mouth") | _part(k, "l_lip")
            # Area-average each block of the 512 px union, then keep the majority.
            expected = union.reshape(RESOLUTION, block, RESOLUTION, block).mean((1, 3)) >= 0.5
            got = ex["guide_masks"]["mouth"][..., 0]
            assert set(np.unique(got)) <= {0, 1}
            np.testing.assert_array_equal(got.astype(bool), expected, err_msg=f"face {k}")
            checked += union.any()
    assert checked >= 15  # nearly every sample face shows a mouth


def test_segmentation_paints_parts_in_the_datasets_order(examples):
    for k in (0, 668):  # 0: overlapping original files; 668: cut from a label map
        split = next(s for s in examples.values() if k in s)
        painted = np.zeros((512, 512), np.uint8)
        for label, part in enumerate(layout.PART_NAMES, start=1):
            painted[_part(k, part)] = label
        expected = np.asarray(Image.fromarray(painted).resize(
            (RESOLUTION, RESOLUTION), Image.Resampling.NEAREST))
        np.testing.assert_array_equal(split[k]["segmentation"][..., 0], expected)


def test_images_are_the_faces_resized(examples):
    ex = examples["test"][4]
    reference = np.asarray(Image.open(SAMPLE / layout.IMAGE_DIR / "4.jpg").convert("RGB")
                           .resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS), float)
    assert ex["image"].shape == (RESOLUTION, RESOLUTION, 3)
    assert np.abs(ex["image"] - reference).mean() < 3.0  # draft-mode decoding is near-exact


def _tfds(*args, cwd):
    tfds_cli = os.path.join(os.path.dirname(sys.executable), "tfds")
    env = dict(os.environ, CELEBAMASK_WORKERS="2")  # also exercises the worker pool
    return subprocess.run([tfds_cli, "build", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("how", ["imports", "inside_the_folder"])
def test_tfds_build_builds_the_sample_and_it_reads_back_without_tensorflow(how, tmp_path):
    if how == "imports":
        result = _tfds("celebamask/64", "--imports", "tfds_celebamask", "--manual_dir",
                       str(SAMPLE), "--data_dir", str(tmp_path), cwd=tmp_path)
    else:
        result = _tfds("--config", "64", "--manual_dir", str(SAMPLE), "--data_dir",
                       str(tmp_path), cwd=REPO / "tfds_celebamask" / "celebamask")
    assert result.returncode == 0, result.stderr[-4000:]
    out = run_without_tensorflow(f"""
import tensorflow_datasets as tfds
import grain
from msagan_jax import input_pipeline
sources = tfds.data_source("celebamask/64", data_dir={str(tmp_path)!r}, download=False)
print(sorted((s, len(v)) for s, v in sources.items()))
task = input_pipeline.Task(dataset="celebamask/64", data_dir={str(tmp_path)!r})
batch = next(iter(input_pipeline.create_train_loader(task, batch_size=4, seed=0,
                                                     shard_index=0, shard_count=1)))
print(batch["image"].shape, batch["mask"].shape)
assert "tensorflow" not in sys.modules
""")
    assert "[('test', 2), ('train', 14), ('validation', 3)]" in out
    assert "(4, 64, 64, 3) (4, 64, 64, 1)" in out
