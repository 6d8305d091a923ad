"""photos.py without a model: reading hostile images, output names, refusing to write over
inputs or existing files, and editing folders a chunk at a time (a fake editor stands in)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import struct
import types
import zlib

import numpy as np
import pytest
from PIL import Image

from msagan_jax import errors, photos

SIZE = 16


class FakeEditor:
    """Editor's interface for edit_files: inverts each face, mask 0.5; records each call
    and which outputs existed when it was made."""

    image_size, attribute = SIZE, "mouth_open"

    def __init__(self, chunk: int = 2, out: pathlib.Path | None = None, fail_on: int = -1):
        self.chunk, self.out, self.fail_on = chunk, out, fail_on
        self.calls: list[int] = []
        self.seen: list[list[str]] = []

    def edit(self, images, value=None):
        faces = np.asarray(images)
        assert faces.shape[1:] == (SIZE, SIZE, 3) and len(faces) <= self.chunk
        if len(self.calls) == self.fail_on:
            raise RuntimeError("the model crashed")
        self.calls.append(len(faces))
        if self.out is not None:
            self.seen.append(sorted(p.name for p in self.out.glob("*")) if self.out.exists()
                             else [])
        return types.SimpleNamespace(images=255 - faces,
                                     masks=np.full(faces.shape[:3], 0.5, np.float32))


class NoModel(FakeEditor):
    def edit(self, images, value=None):
        raise AssertionError("the model ran before the refusal")


def _png(path: pathlib.Path, grey: int = 100, size: int = 20) -> pathlib.Path:
    Image.fromarray(np.full((size, size, 3), grey, np.uint8)).save(path)
    return path


def _bomb_png(path: pathlib.Path, side: int = 15000) -> pathlib.Path:
    """A valid PNG header claiming side x side pixels, with no pixels behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def _hashes(folder: pathlib.Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in folder.iterdir()}


# --- Reading -----------------------------------------------------------------------------

def test_a_decompression_bomb_is_a_named_bad_input(tmp_path):
    bomb = _bomb_png(tmp_path / "bomb.png")
    with pytest.raises(Image.DecompressionBombError):  # PIL itself refuses it
        Image.open(bomb).load()
    with pytest.raises(photos.UnreadableImageError, match="bomb.png: too large to read"):
        photos.preprocess(bomb, SIZE)


def test_an_array_of_two_channels_is_refused_not_read_as_a_batch():
    with pytest.raises(photos.UnreadableImageError, match=r"got shape \(64, 64, 2\)"):
        [photos.preprocess(x, SIZE) for x in photos.as_list(np.zeros((64, 64, 2), np.uint8))]
    assert len(photos.as_list(np.zeros((5, 32, 32), np.uint8))) == 5  # (N, H, W): W > 4
    assert len(photos.as_list(np.zeros((32, 32, 3), np.uint8))) == 1
    assert len(photos.as_list(np.zeros((2, 32, 32, 3), np.uint8))) == 2


@pytest.mark.parametrize("images, message", [
    ([], "no images to edit"), (None, "cannot edit a NoneType"), (b"\x89PNG", "bytes"),
    (np.zeros((0, 8, 8, 3), np.uint8), "no images to edit"), (3, "cannot edit a int")])
def test_nothing_to_edit_is_an_input_error(images, message):
    with pytest.raises(errors.InputError, match=message):
        [photos.preprocess(x, SIZE) for x in photos.as_list(images)]


def test_float_and_16_bit_pil_images_keep_their_brightness():
    half = Image.fromarray(np.full((8, 8), 0.5, np.float32))  # mode F in [0, 1]
    assert half.mode == "F" and np.all(photos.preprocess(half, 8) == 128)
    grey = Image.fromarray(np.full((8, 8), 100.0, np.float32))  # mode F in [0, 255]
    assert np.all(photos.preprocess(grey, 8) == 100)
    dark = Image.fromarray(np.full((8, 8), 257 * 20, np.uint16))  # 16 bit, below 255 * 257
    assert dark.mode.startswith("I;16") and np.all(photos.preprocess(dark, 8) == 20)
    with pytest.raises(photos.UnreadableImageError, match="NaN"):
        photos.preprocess(Image.fromarray(np.full((8, 8), np.nan, np.float32)), 8)
    with pytest.raises(photos.UnreadableImageError, match="NaN"):
        photos.preprocess(np.full((8, 8, 3), np.nan, np.float32), 8)


def test_transparent_modes_are_composited_on_white():
    clear = np.zeros((8, 8, 2), np.uint8)  # LA, fully transparent
    assert np.all(photos.preprocess(Image.fromarray(clear, "LA"), 8) == 255)
    assert np.all(photos.preprocess(Image.new("PA", (8, 8), (0, 0)), 8) == 255)
    palette = Image.new("P", (8, 8), 0)
    palette.info["transparency"] = 0
    assert np.all(photos.preprocess(palette, 8) == 255)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), [0, float("nan")]])
def test_non_finite_values_are_refused(value):
    with pytest.raises(errors.InputError, match="finite"):
        photos.check_values(value, 2, "mouth_open")


def test_values_are_checked_for_count_and_type():
    assert list(photos.check_values(1, 3)) == [1, 1, 1]
    assert list(photos.check_values([0, 1, 0.5], 3)) == [0, 1, 0.5]
    with pytest.raises(errors.InputError, match=r"one per image \(2 images, 3 values\)"):
        photos.check_values([0, 1, 1], 2)
    with pytest.raises(errors.InputError, match="not a number"):
        photos.check_values("open", 1)
    with pytest.raises(errors.InputError, match=r"value=2: .*lie in \[0, 1\]"):
        photos.check_values(2, 1)


# --- Output names ------------------------------------------------------------------------

def test_output_names_never_collide():
    names = photos.output_names([pathlib.Path(n) for n in (
        "face.jpg", "face.png", "face_mask.png", "solo.jpg", "A.PNG", "a.jpg", "x.png",
        "x.jpg", "x_png.png")])
    assert names[pathlib.Path("solo.jpg")] == "solo"  # unique stems keep their plain names
    assert names[pathlib.Path("face.jpg")] == "face_jpg"
    assert names[pathlib.Path("face.png")] == "face_png"
    assert names[pathlib.Path("face_mask.png")] == "face_mask_png"
    assert names[pathlib.Path("A.PNG")] == "A_png"  # names that differ only in case collide
    assert names[pathlib.Path("x_png.png")] == "x_png"  # kept its plain name first ...
    assert names[pathlib.Path("x.png")] == "x_png_2"  # ... so the suffixed one is numbered
    files = [f"{n}.png".casefold() for n in names.values()]
    files += [f"{n}_mask.png".casefold() for n in names.values()]
    assert len(set(files)) == len(files)


def test_a_folder_with_colliding_names_gets_one_output_per_input(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(np.full((20, 20, 3), 10, np.uint8)).save(folder / "face.jpg", quality=100)
    _png(folder / "face.png", 60)
    _png(folder / "face_mask.png", 200)
    written, problems = photos.edit_files(FakeEditor(), folder, out, value=1)
    assert problems == []
    assert [p.name for p in written] == ["face_jpg.png", "face_png.png", "face_mask_png.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["face_jpg.png", "face_jpg_mask.png", "face_png.png", "face_png_mask.png",
         "face_mask_png.png", "face_mask_png_mask.png"])
    for name, grey in (("face_jpg", 10), ("face_png", 60), ("face_mask_png", 200)):
        edited = np.asarray(Image.open(out / f"{name}.png"))  # each holds its own input
        assert np.abs(edited.astype(int) - (255 - grey)).max() <= 2, name


# --- Refusals, before anything is read ---------------------------------------------------

def test_the_edit_never_writes_over_its_input(tmp_path):
    photo = _png(tmp_path / "photo.png")
    before = _hashes(tmp_path)
    for output in (photo, tmp_path):  # the file itself, or its folder (-> photo.png)
        for overwrite in (False, True):
            with pytest.raises(errors.InputError, match="photo.png is one of the inputs"):
                photos.edit_files(NoModel(), photo, output, value=1, overwrite=overwrite)
    mask_named = _png(tmp_path / "p_mask.png")  # the output p.png's mask is the input
    with pytest.raises(errors.InputError, match="p_mask.png is one of the inputs"):
        photos.edit_files(NoModel(), mask_named, tmp_path / "p.png", overwrite=True)
    assert _hashes(tmp_path) == {**before, "p_mask.png": _hashes(tmp_path)["p_mask.png"]}


def test_a_folder_edited_into_itself_is_refused_when_an_output_is_an_input(tmp_path):
    for name, grey in (("a.png", 10), ("b.png", 20), ("c.jpg", 30)):
        _png(tmp_path / name, grey)
    before = _hashes(tmp_path)
    with pytest.raises(errors.InputError, match="a.png is one of the inputs"):
        photos.edit_files(NoModel(), tmp_path, tmp_path, value=0, overwrite=True)
    assert _hashes(tmp_path) == before


def test_a_folder_edited_into_itself_never_reads_what_it_writes(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        _png(tmp_path / name)  # JPEG data, so a.png and b.png are free
    before = _hashes(tmp_path)
    written, problems = photos.edit_files(FakeEditor(chunk=1), tmp_path, tmp_path, value=0)
    assert [p.name for p in written] == ["a.png", "b.png"] and problems == []
    assert {k: v for k, v in _hashes(tmp_path).items() if k in before} == before
    assert len(list(tmp_path.iterdir())) == 6


def test_a_symlink_to_an_input_is_the_input(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    _png(folder / "a.png")
    (out / "a.png").symlink_to(folder / "a.png")
    with pytest.raises(errors.InputError, match="is one of the inputs"):
        photos.edit_files(NoModel(), folder, out, overwrite=True)


def test_existing_outputs_need_overwrite(tmp_path):
    photo, out = _png(tmp_path / "photo.png", 40), tmp_path / "edited.png"
    _png(out, 7)
    with pytest.raises(errors.InputError, match="edited.png already exists: pass --overwrite"):
        photos.edit_files(NoModel(), photo, out, value=1)
    assert np.all(np.asarray(Image.open(out)) == 7)
    written, _ = photos.edit_files(FakeEditor(), photo, out, value=1, overwrite=True)
    assert written == [out] and np.all(np.asarray(Image.open(out)) == 215)
    assert (tmp_path / "edited_mask.png").is_file()
    # A symlink there is replaced, not written through.
    other = _png(tmp_path / "other.png", 3)
    out.unlink()
    out.symlink_to(other)
    photos.edit_files(FakeEditor(), photo, out, value=1, overwrite=True)
    assert not out.is_symlink() and np.all(np.asarray(Image.open(other)) == 3)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("output, message", [
    ("somefile.png/out.png", "somefile.png is not a folder"),
    ("somefile.png/deeper/out.png", "somefile.png is not a folder"),
    ("edited.xyz", "unknown image format '.xyz'"),
    ("taken", "taken_mask.png is a folder"),
    ("somefile.png/", "somefile.png is not a folder: the outputs cannot go there"),
])
def test_bad_outputs_are_refused_before_the_model_runs(tmp_path, output, message):
    photo = _png(tmp_path / "photo.png")
    _png(tmp_path / "somefile.png")
    (tmp_path / "taken_mask.png").mkdir()
    with pytest.raises(errors.InputError, match=message):
        photos.edit_files(NoModel(), photo, f"{tmp_path}/{output}", value=1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_output_folder_is_refused(tmp_path):
    photo, locked = _png(tmp_path / "photo.png"), tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(errors.InputError, match="no permission to write"):
        photos.edit_files(NoModel(), photo, locked / "new" / "out.png", value=1)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1.5, [0, 1]])
def test_a_bad_value_is_refused_before_anything_is_read(tmp_path, value):
    with pytest.raises(errors.InputError, match="value="):
        photos.edit_files(NoModel(), tmp_path / "missing", tmp_path / "out", value=value)
    assert not (tmp_path / "out").exists()


# --- Streaming ---------------------------------------------------------------------------

def test_a_folder_is_read_edited_and_written_a_chunk_at_a_time(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(5):
        _png(folder / f"{i}.png", 10 * i)
    _bomb_png(folder / "2b.png")  # a bad input between good ones
    (folder / "3b.png").mkdir()  # a folder named like an image
    editor = FakeEditor(chunk=2, out=out)
    written, problems = photos.edit_files(editor, folder, out, value=1)
    assert [p.name for p in written] == [f"{i}.png" for i in range(5)]
    assert editor.calls == [2, 2, 1]  # full chunks despite the bad inputs: one batching
    # Each chunk's outputs were on disk before the next chunk was edited.
    assert editor.seen == [[], ["0.png", "0_mask.png", "1.png", "1_mask.png"],
                           ["0.png", "0_mask.png", "1.png", "1_mask.png", "2.png",
                            "2_mask.png", "3.png", "3_mask.png"]]
    assert len(problems) == 2
    assert "2b.png: too large to read" in problems[0] and "3b.png: not a file" in problems[1]


def test_a_late_failure_keeps_what_was_written(tmp_path, monkeypatch):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(5):
        _png(folder / f"{i}.png")
    with pytest.raises(RuntimeError, match="crashed"):  # the model fails on chunk 2
        photos.edit_files(FakeEditor(chunk=2, fail_on=1), folder, out, value=1)
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "0_mask.png", "1.png",
                                                     "1_mask.png"]
    read = photos.preprocess

    def fail_on_the_fourth(source, size):  # or reading fails (say, out of memory) later on
        if pathlib.Path(source).name == "3.png":
            raise MemoryError("3.png")
        return read(source, size)

    monkeypatch.setattr(photos, "preprocess", fail_on_the_fourth)
    with pytest.raises(MemoryError):
        photos.edit_files(FakeEditor(chunk=2), folder, tmp_path / "out2", value=1)
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == [
        "0.png", "0_mask.png", "1.png", "1_mask.png"]
