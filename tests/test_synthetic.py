"""Tests of the synthetic CelebAMask-HQ faces: format, determinism, masks, and learnability."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import numpy as np
from scipy import ndimage
import pytest
from PIL import Image

from tfds_celebamask import synthetic
from tfds_celebamask.celebamask import layout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOUTH_PARTS = layout.GUIDE_MASK_PARTS["mouth"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    """A small synthetic layout shared by the read-back tests."""
    root = str(tmp_path_factory.mktemp("synthetic") / "celebamask")
    synthetic.generate(root, 12, size=128, seed=3)
    return root


def _files(root: str) -> dict[str, bytes]:
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def _mouth_union(face: synthetic.SyntheticFace) -> np.ndarray:
    union = np.zeros(next(iter(face.parts.values())).shape, bool)
    for part in MOUTH_PARTS:
        if part in face.parts:
            union |= face.parts[part]
    return union


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Grows `mask` by `steps` pixels, diagonals included."""
    return ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=steps)


def _paint(parts: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Labels from part masks, painted in PART_NAMES order as the dataset's g_mask.py does."""
    labels = np.zeros(shape, np.uint8)
    for label, part in enumerate(layout.PART_NAMES, start=1):
        if part in parts:
            labels[parts[part]] = label
    return labels


def test_same_seed_writes_same_bytes_and_another_seed_differs(tmp_path):
    synthetic.generate(tmp_path / "a", 5, size=64, seed=11)
    synthetic.generate(tmp_path / "b", 5, size=64, seed=11)
    synthetic.generate(tmp_path / "c", 5, size=64, seed=12)
    a, b, c = (_files(str(tmp_path / n)) for n in "abc")
    assert a == b
    image = os.path.join(layout.IMAGE_DIR, "0.jpg")
    assert a[image] != c[image]


def test_parallel_generation_writes_the_same_bytes_as_serial(tmp_path):
    synthetic.generate(tmp_path / "serial", 6, size=64, seed=5)
    synthetic.generate(tmp_path / "parallel", 6, size=64, seed=5, workers=2)
    assert _files(str(tmp_path / "serial")) == _files(str(tmp_path / "parallel"))


def test_a_face_is_the_same_drawn_alone_or_in_any_order():
    later = synthetic.draw_face(7, 64, seed=2)
    for k in (3, 9):
        synthetic.draw_face(k, 64, seed=2)
    again = synthetic.draw_face(7, 64, seed=2)
    assert np.array_equal(later.image, again.image)
    assert later.attributes == again.attributes
    assert not np.array_equal(later.image, synthetic.draw_face(8, 64, seed=2).image)


def test_written_layout_reads_back_with_all_splits_and_the_drawn_attributes(folder):
    records = layout.read_index(folder)
    assert [r.index for r in records] == list(range(12))
    assert {r.split for r in records} == set(layout.SPLITS)
    for record in records:
        drawn = synthetic.draw_face(record.index, 128, seed=3).attributes
        assert layout.attributes_dict(record.attributes) == drawn


def test_annotation_files_have_the_real_datasets_text_format(folder):
    with open(os.path.join(folder, layout.ATTRIBUTE_FILE), encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0] == "12"
    assert lines[1] == " ".join(layout.ATTRIBUTE_NAMES)
    assert lines[2].startswith("0.jpg  ") and lines[2][7] in "-1"
    assert len(lines[2].split()) == 41 and lines[-1] == ""
    with open(os.path.join(folder, layout.MAPPING_FILE), encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0] == "idx        orig_idx   orig_file"
    names = []
    for k, line in enumerate(lines[1:-1]):
        idx, orig_idx, orig_file = line[:11], line[11:22], line[22:]
        assert int(idx) == k and idx == f"{k:<11}"
        assert len(orig_file) == 10 and orig_file.endswith(".jpg")
        assert int(orig_idx) == int(orig_file[:6]) - 1 and orig_idx == f"{int(orig_idx):<11}"
        names.append(orig_file)
    assert len(set(names)) == len(names)
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]


def test_celeba_files_cover_all_splits_at_three_faces_and_split_80_10_10():
    assert {layout.split_of(n) for n in synthetic.celeba_files(3)} == set(layout.SPLITS)
    files = synthetic.celeba_files(1000, seed=4)
    assert len(set(files)) == 1000
    counts = {s: sum(layout.split_of(n) == s for n in files) for s in layout.SPLITS}
    assert counts == {"train": 800, "validation": 100, "test": 100}
    assert synthetic.celeba_files(10, seed=4) == files[:10]  # face k's file ignores num
    assert synthetic.celeba_files(10, seed=5) != files[:10]


def test_part_files_are_rgb_0_255_half_size_and_exactly_the_drawn_parts(folder):
    for k in range(4):
        face = synthetic.draw_face(k, 128, seed=3)
        for part in layout.PART_NAMES:
            path = layout.mask_path(folder, k, part)
            if part not in face.parts:
                assert not os.path.exists(path), path
                continue
            with Image.open(path) as im:
                assert im.format == "PNG" and im.mode == "RGB" and im.size == (64, 64)
                array = np.asarray(im)
            assert set(np.unique(array)) <= {0, 255}
            assert (array == array[..., :1]).all()
            assert np.array_equal(array[..., 0] == 255, face.parts[part])
        assert ("mouth" in face.parts) == face.attributes["Mouth_Slightly_Open"]


def test_read_face_mouth_guide_is_the_union_of_lips_and_mouth_resized(folder):
    k = next(r.index for r in layout.read_index(folder)
             if layout.attributes_dict(r.attributes)["Mouth_Slightly_Open"])
    face = synthetic.draw_face(k, 128, seed=3)
    union = _mouth_union(face)  # 64 x 64 here; area-resize to 32 x 32 by hand
    expected = union.reshape(32, 2, 32, 2).mean(axis=(1, 3)) >= 0.5
    got = layout.read_face(folder, k, 32)["guide_masks"]["mouth"][..., 0]
    assert got.any() and np.array_equal(got.astype(bool), expected)
    at_mask_size = layout.read_face(folder, k, 64)
    assert np.array_equal(at_mask_size["segmentation"][..., 0], face.segmentation)


@pytest.mark.parametrize("overrides", [
    {}, {"Eyeglasses": True, "Wearing_Hat": True}, {"Bangs": True, "Wearing_Earrings": True},
    {"Bald": True, "Wearing_Necklace": True, "Eyeglasses": True}])
def test_painting_part_files_in_dataset_order_gives_the_visible_part(overrides):
    for k in range(6):
        face = synthetic.draw_face(k, 128, seed=1, overrides=overrides)
        assert np.array_equal(_paint(face.parts, (64, 64)), face.segmentation)


def test_parts_overlap_like_the_real_data_skin_under_eyes_nose_and_mouth():
    for k in range(8):
        face = synthetic.draw_face(k, 256, seed=0)
        skin = face.parts["skin"]
        for part in ("l_eye", "r_eye", "nose", "u_lip", "l_lip", "mouth"):
            if part in face.parts:
                assert skin[face.parts[part]].mean() > 0.98, (k, part)


def test_image_changes_between_paired_faces_exactly_inside_mouth_parts():
    # Full resolution: every changed pixel lies in a 2x2 block of a mouth part.
    for k in range(6):
        closed = synthetic.draw_face(k, 256, seed=6, overrides={"Mouth_Slightly_Open": False})
        opened = synthetic.draw_face(k, 256, seed=6, overrides={"Mouth_Slightly_Open": True})
        changed = (closed.image != opened.image).any(-1).reshape(128, 2, 128, 2).any((1, 3))
        region = _mouth_union(closed) | _mouth_union(opened)
        assert changed.any() and not (changed & ~region).any()
        assert "mouth" in opened.parts and "mouth" not in closed.parts
        assert changed[opened.parts["mouth"]].mean() > 0.9  # the cavity is painted there


def test_paired_faces_differ_only_inside_the_dilated_mouth_guide_at_64px():
    for k in range(10):
        faces = [synthetic.draw_face(k, 256, seed=9, overrides={"Mouth_Slightly_Open": v})
                 for v in (False, True)]
        guide = layout.resize_mask(_mouth_union(faces[0]) | _mouth_union(faces[1]), 64)
        for resample, dilation in ((Image.Resampling.BOX, 1), (Image.Resampling.LANCZOS, 3)):
            small = [np.asarray(Image.fromarray(f.image).resize((64, 64), resample), int)
                     for f in faces]
            diff = np.abs(small[0] - small[1]).max(-1)
            assert diff[guide.astype(bool)].max() > 30  # the mouth visibly changes
            assert diff[~_dilate(guide, dilation)].max() == 0, (k, resample)


def test_open_mouth_cavity_is_darker_than_lips_and_teeth_lighter():
    for k in range(8):
        face = synthetic.draw_face(k, 256, seed=4, overrides={"Mouth_Slightly_Open": True})
        gray = np.asarray(Image.fromarray(face.image).convert("L"), float)
        blocks = gray.reshape(128, 2, 128, 2).mean(axis=(1, 3))
        visible = face.segmentation
        mouth = blocks[visible == layout.SEGMENTATION_CLASSES.index("mouth")]
        lips = blocks[(visible == layout.SEGMENTATION_CLASSES.index("u_lip"))
                      | (visible == layout.SEGMENTATION_CLASSES.index("l_lip"))]
        assert np.median(mouth) < np.median(lips) - 30, k
        assert np.percentile(mouth, 95) > np.median(lips) + 30, k  # the strip of teeth


def test_mouth_state_is_linearly_learnable_from_whole_64px_images():
    features, labels = [], []
    for k in range(400):
        face = synthetic.draw_face(k, 128, seed=7)
        small = Image.fromarray(face.image).resize((64, 64), Image.Resampling.LANCZOS)
        features.append(np.asarray(small.convert("L"), float).ravel() / 255)
        labels.append(1.0 if face.attributes["Mouth_Slightly_Open"] else -1.0)
    x, y = np.array(features), np.array(labels)
    assert 0.35 < (y > 0).mean() < 0.65
    mean = x[:300].mean(axis=0)
    train = np.c_[x[:300] - mean, np.ones(300)]
    test = np.c_[x[300:] - mean, np.ones(100)]
    # Ridge least squares on raw pixels: a weak learner, so the mouth must be plainly visible.
    w = np.linalg.solve(train.T @ train + 10.0 * np.eye(train.shape[1]), train.T @ y[:300])
    accuracy = (np.sign(test @ w) == y[300:]).mean()
    assert accuracy >= 0.85, accuracy


def test_overrides_change_only_the_forced_attribute_and_reject_unknown_names():
    for k in range(10):
        base = synthetic.draw_face(k, 256, seed=8)
        flipped = not base.attributes["Mouth_Slightly_Open"]
        other = synthetic.draw_face(k, 64, seed=8, overrides={"Mouth_Slightly_Open": flipped})
        changed = [n for n in layout.ATTRIBUTE_NAMES
                   if base.attributes[n] != other.attributes[n]]
        assert changed == ["Mouth_Slightly_Open"]
    with pytest.raises(ValueError, match="Attractive"):
        synthetic.draw_face(0, 64, overrides={"Attractive": True})
    with pytest.raises(ValueError, match="Bangs"):
        synthetic.draw_face(0, 64, overrides={"Bald": True, "Bangs": True})


def test_forced_draws_redraw_only_what_they_shape_and_reject_unknown_or_out_of_range_ones():
    more = []
    for k in range(6):
        draw = lambda **draws: synthetic.draw_face(  # noqa: E731
            k, 256, seed=8, overrides={"Mouth_Slightly_Open": True}, draws=draws or None)
        base, wider, narrower = draw(), draw(opening=0.99), draw(opening=0.0)
        assert wider.attributes == base.attributes
        # A wider opening paints at least as much cavity (the chin can cap it) ...
        more.append(int(wider.parts["mouth"].sum()) - int(narrower.parts["mouth"].sum()))
        # ... and changes nothing away from the mouth.
        mouth = np.zeros(base.image.shape[:2], bool)
        for face in (base, wider, narrower):
            for part in ("mouth", "u_lip", "l_lip"):
                mouth |= np.kron(face.parts[part], np.ones((2, 2), bool))
        far = ~ndimage.binary_dilation(mouth, iterations=2)
        assert np.array_equal(wider.image[far], base.image[far])
    assert min(more) >= 0 and sum(m > 0 for m in more) >= 3, more
    with pytest.raises(ValueError, match="openness"):
        synthetic.draw_face(0, 64, draws={"openness": 0.5})
    with pytest.raises(ValueError, match="opening=1.0"):
        synthetic.draw_face(0, 64, draws={"opening": 1.0})


def test_attributes_vary_and_unmodeled_ones_stay_false():
    faces = [synthetic.draw_face(k, 128, seed=10) for k in range(300)]
    rates = {n: np.mean([f.attributes[n] for f in faces]) for n in layout.ATTRIBUTE_NAMES}
    for name in synthetic.MODELED_ATTRIBUTES:
        if name != "No_Beard":
            assert 0 < rates[name] < 1, name
    assert 0.4 < rates["Mouth_Slightly_Open"] < 0.6
    assert rates["No_Beard"] == 1
    for name in set(layout.ATTRIBUTE_NAMES) - set(synthetic.MODELED_ATTRIBUTES):
        assert rates[name] == 0, name
    for f in faces:  # hair truthfulness: one colour at most, none when bald
        colours = sum(f.attributes[n] for n in ("Black_Hair", "Blond_Hair", "Brown_Hair",
                                                 "Gray_Hair"))
        assert colours <= 1 and not (f.attributes["Bald"] and colours)
        assert ("hair" in f.parts) != f.attributes["Bald"]
        assert ("eye_g" in f.parts) == f.attributes["Eyeglasses"]
        assert ("hat" in f.parts) == f.attributes["Wearing_Hat"]
        assert ("ear_r" in f.parts) == f.attributes["Wearing_Earrings"]
        assert ("neck_l" in f.parts) == f.attributes["Wearing_Necklace"]


def test_faces_stay_in_frame_and_vary_in_place_size_and_colour():
    centres, sizes, tones = [], [], []
    for k in range(60):
        face = synthetic.draw_face(k, 128, seed=0)
        head = face.parts["skin"].copy()
        for part in ("l_ear", "r_ear", "hat"):
            if part in face.parts:
                head |= face.parts[part]
        assert not (head[0].any() or head[-1].any() or head[:, 0].any() or head[:, -1].any())
        ys, xs = np.nonzero(face.parts["skin"])
        centres.append((xs.mean(), ys.mean()))
        sizes.append(xs.max() - xs.min())
        skin = np.kron(face.segmentation == 1, np.ones((2, 2), bool))
        tones.append(face.image[skin].mean())
    assert np.ptp(np.array(centres)[:, 0]) > 3 and np.ptp(sizes) > 5 and np.ptp(tones) > 60


def test_cli_writes_a_readable_layout_and_defines_flags_only_when_run(tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run(
        [sys.executable, "-m", "tfds_celebamask.synthetic", "--out", str(out), "--num", "4",
         "--size", "64", "--seed", "2"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "4 synthetic faces" in run.stdout and "validation 1" in run.stdout
    assert len(layout.read_index(str(out))) == 4
    check = ("import sys; import tfds_celebamask.synthetic; from absl import flags; "
             "assert 'out' not in flags.FLAGS and 'num' not in flags.FLAGS; "
             "assert not {'tensorflow', 'jax'} & set(sys.modules)")
    run = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_the_generator_imports_only_numpy_pillow_absl_and_the_layout():
    # The package's __init__ registers the TFDS builders; the generator itself must not need
    # TensorFlow, TFDS or JAX (pool workers and users without them import it).
    with open(synthetic.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert modules <= set(sys.stdlib_module_names) | {"numpy", "PIL", "absl",
                                                       "tfds_celebamask"}, modules


def test_refuses_a_non_empty_folder_that_is_not_synthetic(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        synthetic.generate(tmp_path, 3, size=32)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_rewriting_a_synthetic_folder_replaces_the_old_faces(tmp_path):
    synthetic.generate(tmp_path, 5, size=32)
    synthetic.generate(tmp_path, 3, size=32, seed=1)
    assert [r.index for r in layout.read_index(str(tmp_path))] == [0, 1, 2]
    assert not os.path.exists(layout.mask_path(tmp_path, 4, "skin"))


def test_an_interrupted_generation_leaves_no_attribute_file(tmp_path, monkeypatch):
    real = synthetic._write_face

    def failing(job):
        if job[1] == 2:
            raise RuntimeError("disk full")
        return real(job)

    monkeypatch.setattr(synthetic, "_write_face", failing)
    with pytest.raises(RuntimeError):
        synthetic.generate(tmp_path, 4, size=32)
    assert layout.missing_entries(tmp_path) == [layout.ATTRIBUTE_FILE, layout.MAPPING_FILE]
