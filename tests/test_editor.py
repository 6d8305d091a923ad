"""Editing photos: any size and colour mode in, the model's faces out; files, folders, errors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import msagan_jax
from conftest import REPO
from msagan_jax import editor
from tfds_celebamask import synthetic


def _face(index: int = 0, size: int = 128) -> np.ndarray:
    return synthetic.draw_face(index, size=size, seed=1).image


def test_preprocess_centre_crops_and_resizes_to_the_models_size():
    wide = np.zeros((60, 100, 3), np.uint8)
    wide[:, 20:80] = 200  # the centre square
    out = editor.preprocess(wide, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.all(out == 200)


def test_preprocess_takes_grayscale_rgba_and_float_images():
    gray = editor.preprocess(np.full((40, 40), 90, np.uint8), 16)
    assert gray.shape == (16, 16, 3) and np.all(gray == 90)
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255  # red where opaque, but nothing is opaque: white
    assert np.all(editor.preprocess(rgba, 16) == 255)
    as_float = editor.preprocess(np.full((16, 16, 3), 0.5, np.float32), 16)
    assert np.all(as_float == 128)
    sixteen_bit = Image.fromarray(np.full((20, 20), 65535, np.uint16))
    assert np.all(editor.preprocess(sixteen_bit, 8) == 255)
    with pytest.raises(editor.UnreadableImageError, match=r"must lie in \[0, 1\]"):
        editor.preprocess(np.full((16, 16, 3), 200.0, np.float32), 16)


def test_an_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(editor.UnreadableImageError, match="notes.jpg: not a readable image"):
        editor.preprocess(bad, 16)
    with pytest.raises(editor.UnreadableImageError, match="missing.png: no such file"):
        editor.preprocess(tmp_path / "missing.png", 16)


def test_load_editor_and_edit_in_two_lines(trained_run):
    ed = msagan_jax.load_editor(trained_run)
    out = ed.edit([_face(0), _face(1, 200)], value=1)
    assert out.images.shape == (2, 64, 64, 3) and out.images.dtype == np.uint8
    assert out.masks.shape == (2, 64, 64) and 0 <= out.masks.min() <= out.masks.max() <= 1
    assert out.attribute_images.shape == (2, 64, 64, 3)
    assert list(out.values) == [1, 1]
    with pytest.raises(ValueError, match="value=2"):
        ed.edit(_face(0), value=2)
    # The output is I_a * b + I * (1 - b), up to uint8 rounding.
    x, a = out.inputs / 127.5 - 1, out.attribute_images / 127.5 - 1
    b = out.masks[..., None]
    assert np.abs((a * b + x * (1 - b) + 1) * 127.5 - out.images).max() <= 1.5


def test_value_none_flips_what_the_judge_sees(trained_run):
    ed = msagan_jax.load_editor(trained_run)
    assert ed.attribute_source == "judge"
    faces = np.stack([_face(i, 64) for i in range(6)])
    out = ed.edit(faces, value=None)
    seen = ed.judge.predict(faces / 127.5 - 1)
    assert np.array_equal(out.values, 1 - seen)


def test_without_a_judge_value_none_asks_the_discriminator(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("judge"))
    ed = msagan_jax.load_editor(run)
    assert ed.judge is None and ed.attribute_source == "discriminator"
    out = ed.edit(_face(0), value=None)
    assert out.values[0] in (0, 1)


def test_edit_files_edits_a_folder_and_names_the_unreadable_file(trained_run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_face(0, 128)).save(photos / "a.jpg")
    Image.fromarray(_face(1, 96)).convert("L").save(photos / "b.png")
    Image.fromarray(_face(2, 80)).convert("RGBA").save(photos / "c.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    written, errors = editor.edit_files(msagan_jax.load_editor(trained_run), photos,
                                        tmp_path / "out", value=0)
    assert [p.name for p in written] == ["a.png", "b.png", "c.png"]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    for name in ("a", "b", "c"):
        assert Image.open(tmp_path / "out" / f"{name}.png").size == (64, 64)
        assert Image.open(tmp_path / "out" / f"{name}_mask.png").mode == "L"


def _edit_cli(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "--mode=edit", *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_the_edit_command_writes_the_face_and_its_mask(trained_run, tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(_face(3, 300)[:, 20:280]).save(photo)  # 300 x 260, not square
    result = _edit_cli(f"--workdir={trained_run}", f"--input={photo}",
                       f"--output={tmp_path / 'edited.png'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / "edited.png").size == (64, 64)
    assert (tmp_path / "edited_mask.png").is_file()


def test_the_edit_command_fails_naming_the_bad_file_after_editing_the_rest(trained_run,
                                                                            tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(_face(4, 64)).save(photos / "good.png")
    (photos / "bad.png").write_text("no")
    result = _edit_cli(f"--workdir={trained_run}", f"--input={photos}",
                       f"--output={tmp_path / 'out'}", "--value=1")
    assert result.returncode == 1
    assert "bad.png: not a readable image" in result.stdout
    assert (tmp_path / "out" / "good.png").is_file()
