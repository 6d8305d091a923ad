"""Editing photos: any size and colour mode in, the model's faces out; files, folders, errors."""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from test_photos import _bomb_png

import msagan_jax
from msagan_jax import errors, photos, visualize
from tfds_celebamask import synthetic


def _face(index: int = 0, size: int = 128) -> np.ndarray:
    return synthetic.draw_face(index, size=size, seed=1).image


def test_preprocess_centre_crops_and_resizes_to_the_models_size():
    wide = np.zeros((60, 100, 3), np.uint8)
    wide[:, 20:80] = 200  # the centre square
    out = photos.preprocess(wide, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.all(out == 200)


def test_preprocess_takes_grayscale_rgba_and_float_images():
    gray = photos.preprocess(np.full((40, 40), 90, np.uint8), 16)
    assert gray.shape == (16, 16, 3) and np.all(gray == 90)
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255  # red where opaque, but nothing is opaque: white
    assert np.all(photos.preprocess(rgba, 16) == 255)
    as_float = photos.preprocess(np.full((16, 16, 3), 0.5, np.float32), 16)
    assert np.all(as_float == 128)
    sixteen_bit = Image.fromarray(np.full((20, 20), 65535, np.uint16))
    assert np.all(photos.preprocess(sixteen_bit, 8) == 255)
    with pytest.raises(photos.UnreadableImageError, match=r"must lie in \[0, 1\]"):
        photos.preprocess(np.full((16, 16, 3), 200.0, np.float32), 16)


def test_an_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(photos.UnreadableImageError, match="notes.jpg: not a readable image"):
        photos.preprocess(bad, 16)
    with pytest.raises(photos.UnreadableImageError, match="missing.png: no such file"):
        photos.preprocess(tmp_path / "missing.png", 16)


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


def test_an_edit_gives_g_the_target_itself_or_the_condition_chosen_for_its_direction(
        trained_run):
    ed = msagan_jax.load_editor(trained_run)
    faces = [_face(0, 64), _face(1, 64)]
    x = np.stack(faces).astype(np.float32) / 127.5 - 1
    raw = lambda c: ed.generate(x, np.asarray(c, np.float32))[0]  # noqa: E731
    # The paper's: G is given the target value, 0 or 1.
    np.testing.assert_array_equal(ed.edit(faces, value=[1, 0]).images,
                                  visualize.to_uint8(raw([1.0, 0.0])))
    stronger = ed.with_condition(0.0, 1.5)
    out = stronger.edit(faces, value=[1, 0])
    assert list(out.values) == [1, 0]  # what was asked for, not the c G was given
    np.testing.assert_array_equal(out.images, visualize.to_uint8(raw([1.5, 0.0])))
    assert (out.images[0] != visualize.to_uint8(raw([1.0, 0.0]))[0]).any()  # another edit
    assert ed.config.edit_condition_to_1 == 1.0  # the run's editor is left as it was
    with pytest.raises(errors.ConfigError, match="edit_condition_to_1=0.0"):
        ed.with_condition(0.0, 0.0)


def test_value_none_flips_what_the_judge_sees(trained_run):
    ed = msagan_jax.load_editor(trained_run)
    assert ed.attribute_source == "judge"
    faces = np.stack([_face(i, 64) for i in range(6)])
    out = ed.edit(faces, value=None)
    seen = ed.judge.predict(faces / 127.5 - 1)
    assert np.array_equal(out.values, 1 - seen)


def test_without_a_judge_value_none_asks_the_discriminator(trained_run, tmp_path,
                                                           monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("judge"))
    ed = msagan_jax.load_editor(run)
    assert ed.judge is None and ed.attribute_source == "discriminator"
    faces = np.stack([_face(i, 64) for i in range(6)])
    out = ed.edit(faces, value=None)
    d_logits = np.asarray(ed._d_logits(ed.d_params, faces / 127.5 - 1))
    assert np.array_equal(out.values, 1 - (d_logits > 0))
    # D's classifier alone decides: with logits fixed by brightness (+5 bright, -5 dark),
    # bright faces are edited to 0 and dark ones to 1.
    monkeypatch.setattr(ed, "_d_logits", lambda params, x: np.where(
        np.asarray(x).mean(axis=(1, 2, 3)) > 0, 5.0, -5.0).astype(np.float32))
    bright, dark = np.full((64, 64, 3), 230, np.uint8), np.full((64, 64, 3), 20, np.uint8)
    assert list(ed.edit([bright, dark, dark, bright], value=None).values) == [0, 1, 1, 0]


def test_edit_refuses_bad_values_and_inputs_before_the_model_runs(trained_run, monkeypatch):
    ed = msagan_jax.load_editor(trained_run)
    assert list(ed.edit([_face(0, 64), _face(1, 64)], value=[0, 1]).values) == [0, 1]

    def no_model(*args):
        raise AssertionError("the model ran")

    monkeypatch.setattr(ed, "generate", no_model)
    monkeypatch.setattr(ed, "attribute_logits", no_model)
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(errors.InputError, match=f"value={value}: .*finite"):
            ed.edit(_face(0, 64), value=value)
    with pytest.raises(errors.InputError, match="one per image"):
        ed.edit([_face(0, 64), _face(1, 64)], value=[0, 1, 1])
    with pytest.raises(photos.UnreadableImageError, match=r"got shape \(64, 64, 2\)"):
        ed.edit(np.zeros((64, 64, 2), np.uint8), value=1)
    with pytest.raises(errors.InputError, match="no images to edit"):
        ed.edit([], value=1)
    with pytest.raises(errors.InputError, match="cannot edit a NoneType"):
        ed.edit(None)


def test_edit_files_edits_a_folder_and_names_the_unreadable_file(trained_run, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_face(0, 128)).save(folder / "a.jpg")
    Image.fromarray(_face(1, 96)).convert("L").save(folder / "b.png")
    Image.fromarray(_face(2, 80)).convert("RGBA").save(folder / "c.png")
    Image.fromarray(_face(3, 70)).save(folder / "d.png")
    Image.fromarray(_face(4, 64)).save(folder / "e.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    ed = msagan_jax.load_editor(trained_run)
    ed.chunk = 2
    calls = []
    generate = ed._generate
    ed._generate = lambda params, x, c: calls.append(len(x)) or generate(params, x, c)
    written, problems = photos.edit_files(ed, folder, tmp_path / "out", value=0)
    assert [p.name for p in written] == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert calls == [2, 2, 1]  # one compiled call per chunk of files: one batching
    assert len(problems) == 1 and "broken.jpg" in problems[0]
    for name in ("a", "b", "c", "d", "e"):
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


def _sha256s(folder: pathlib.Path) -> dict[str, str]:
    """Every entry of `folder`: its content's sha256 (files it can read), else its kind."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or not p.is_file():
            out[p.name] = f"link to {os.readlink(p)}" if p.is_symlink() else "folder"
        elif os.access(p, os.R_OK):
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[p.name] = f"unreadable, {p.stat().st_size} bytes, {p.stat().st_mtime_ns}"
    return out


def test_the_edit_command_refuses_with_one_line_before_editing(trained_run, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(_face(5, 64)).save(photo)
    (tmp_path / "somefile.png").write_bytes(photo.read_bytes())
    before = _sha256s(tmp_path)
    for flags, message in (
            ((f"--output={photo}",), f"error: {photo} is one of the inputs"),
            ((f"--output={tmp_path}",), f"error: {photo} is one of the inputs"),
            ((f"--output={tmp_path / 'somefile.png' / 'out.png'}",),
             "somefile.png is not a folder"),
            ((f"--output={tmp_path / 'new.png'}", "--value=nan"), "error: value=nan"),
            ((f"--output={tmp_path / 'new.png'}", "--edit_condition=0,x"),
             "error: --edit_condition=0,x: give two numbers"),
            ((f"--output={tmp_path / 'new.png'}", "--edit_condition=1,0"),
             "error: edit_condition_to_0=1.0, edit_condition_to_1=0.0"),
            ((f"--output={tmp_path / 'somefile.png'}",), "somefile.png already exists")):
        result = _edit_cli(f"--workdir={trained_run}", f"--input={photo}", *flags)
        assert result.returncode == 1, (flags, result.stdout, result.stderr[-2000:])
        assert message in result.stderr and "Traceback" not in result.stderr, flags
        assert "wrote" not in result.stdout, flags
    assert _sha256s(tmp_path) == before


def _hostile_folder(folder: pathlib.Path) -> tuple[list[str], list[str]]:
    """A folder of good and hostile images: (good file names, bad entry names)."""
    folder.mkdir()
    face = _face(6, 96)
    Image.fromarray(face).save(folder / "good.png")
    Image.fromarray(face).convert("L").save(folder / "good_mask.png")  # named like a mask
    Image.fromarray(face[:1, :1]).save(folder / "one.png")  # 1x1
    Image.fromarray(face[..., 0].astype(np.uint16) * 257).save(folder / "deep.png")  # 16 bit
    Image.fromarray(face).convert("RGBA").save(folder / "rgba.png")
    palette = Image.fromarray(face).convert("P")
    palette.save(folder / "palette.png", transparency=0)
    Image.fromarray(face).save(folder / "jpeg.jpg")
    good = ["good.png", "good_mask.png", "one.png", "deep.png", "rgba.png", "palette.png",
            "jpeg.jpg"]
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((folder / "jpeg.jpg").read_bytes()[:300])
    (folder / "text.png").write_text("not an image at all\n")
    _bomb_png(folder / "bomb.png")
    (folder / "x.png").mkdir()
    (folder / "gone.png").symlink_to(folder / "deleted.png")  # unreadable, even by root
    bad = ["empty.jpg", "truncated.jpg", "text.png", "bomb.png", "x.png", "gone.png"]
    if os.geteuid() != 0:  # root reads anything: the dangling link stands in for it there
        Image.fromarray(face).save(folder / "secret.png")
        (folder / "secret.png").chmod(0)
        bad.append("secret.png")
    return good, bad


def test_the_edit_command_survives_a_folder_of_hostile_images(trained_run, tmp_path):
    good, bad = _hostile_folder(tmp_path / "in")
    before = _sha256s(tmp_path / "in")
    result = _edit_cli(f"--workdir={trained_run}", f"--input={tmp_path / 'in'}",
                       f"--output={tmp_path / 'out'}", "--value=1")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"error: {len(bad)} file(s) not edited" in result.stdout, result.stdout
    for name in bad:
        assert f"{tmp_path / 'in' / name}: " in result.stdout, name
    for name in good:
        assert f"{tmp_path / 'in' / name}: " not in result.stdout, name
    # good.png and good_mask.png would share good_mask.png: both keep their suffix.
    outputs = ["good_png", "good_mask_png", "one", "deep", "rgba", "palette", "jpeg"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{n}.png" for n in outputs] + [f"{n}_mask.png" for n in outputs])
    for name in outputs:
        assert Image.open(tmp_path / "out" / f"{name}.png").size == (64, 64)
        assert f"wrote {tmp_path / 'out' / name}.png and {name}_mask.png" in result.stdout
    assert _sha256s(tmp_path / "in") == before
