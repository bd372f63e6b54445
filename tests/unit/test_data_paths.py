"""Image paths that escape the dataset root, missing/empty/corrupt images, and the inline cache."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from repro.data import DATASETS, open_dataset
from repro.data.paths import InlineImages
from repro.data.synthetic import generate
from repro.data.synthetic.draw import png_shape
from repro.errors import InputError

PNG = png_shape("blue", "square")
CONV = [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A square."}]


def pretrain(root: Path, image: str) -> list:
    (root / "blip_laion_cc_sbu_558k.json").write_text(json.dumps([{"id": "1", "image": image, "conversations": CONV}]))
    return DATASETS.get("llava_pretrain")(root, None)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "ok.png").write_bytes(PNG)
    (tmp_path / "outside.png").write_bytes(PNG)
    return tmp_path / "data"


def test_good_path_resolves_inside(root):
    [sample] = pretrain(root, "ok.png")
    assert sample.image == (root / "images" / "ok.png").resolve()


@pytest.mark.parametrize("image, pattern", [
    ("../../outside.png", r"field 'image': image path '../../outside.png' escapes the dataset root"),
    ("x/../ok.png", r"escapes the dataset root \('..'\)"),
    ("/etc/passwd", r"field 'image': absolute image path '/etc/passwd' refused"),
    ("C:\\img.png", r"absolute image path"),
    ("", r"field 'image': empty image path"),
])
def test_escaping_paths_refused(root, image, pattern):
    with pytest.raises(InputError, match=pattern) as info:
        pretrain(root, image)
    assert "blip_laion_cc_sbu_558k.json: row 1" in str(info.value)


def test_symlink_pointing_outside_refused(root):
    os.symlink(root.parent / "outside.png", root / "images" / "link.png")
    with pytest.raises(InputError, match=r"row 1: field 'image': image path 'link.png' resolves outside"):
        pretrain(root, "link.png")
    os.symlink(root / "images" / "ok.png", root / "images" / "inner.png")  # inside the root: fine
    assert pretrain(root, "inner.png")[0].image == (root / "images" / "ok.png").resolve()


def test_symlinked_directory_outside_refused(root):
    (root.parent / "elsewhere").mkdir()
    (root.parent / "elsewhere" / "x.png").write_bytes(PNG)
    os.symlink(root.parent / "elsewhere", root / "images" / "dir")
    with pytest.raises(InputError, match="resolves outside the dataset root"):
        pretrain(root, "dir/x.png")


@pytest.mark.parametrize("content, pattern", [
    (None, r"row 1: field 'image': image 'bad.png' not found"),
    (b"", r"row 1: field 'image': image 'bad.png' is empty \(0 bytes\)"),
    (b"this is not a png at all", r"row 1: field 'image': image 'bad.png': corrupt or not an image"),
])
def test_missing_empty_corrupt_image(root, content, pattern):
    if content is not None:
        (root / "images" / "bad.png").write_bytes(content)
    with pytest.raises(InputError, match=pattern):
        pretrain(root, "bad.png")


def test_inline_images_cache(tmp_path):
    cache = InlineImages(tmp_path / "cache")
    path = cache.store(PNG, Path("f.parquet"), 3, "image")
    assert path.parent == tmp_path / "cache" and path.suffix == ".png" and path.read_bytes() == PNG
    assert cache.store(PNG, Path("f.parquet"), 4, "image") == path  # content-addressed, written once
    with pytest.raises(InputError, match=r"f.parquet: row 5: field 'image': empty image \(0 bytes\)"):
        cache.store(b"", Path("f.parquet"), 5, "image")
    with pytest.raises(InputError, match=r"f.parquet: row 6: field 'image': inline image: corrupt"):
        cache.store(b"\x89PNG\r\n\x1a\nbroken", Path("f.parquet"), 6, "image")
    with pytest.raises(InputError, match=r"row 7: field 'image': expected image bytes, got str"):
        cache.from_hf({"bytes": "text", "path": None}, Path("f.parquet"), 7, "image")


def test_read_only_root_with_inline_images(tmp_path):
    root = tmp_path / "mme"
    generate("mme", root, seed=1, size="tiny")
    modes = {}
    for p in [root, *root.rglob("*")]:  # a published stage output is read-only
        modes[p] = p.stat().st_mode
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        items = open_dataset(root, cache_dir=tmp_path / "cache").records()
        assert items and all(i.image.parent == tmp_path / "cache" for i in items)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_default_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_IMAGE_CACHE", str(tmp_path / "envcache"))
    generate("mme", tmp_path / "mme", seed=0, size="tiny")
    items = open_dataset(tmp_path / "mme").records()
    assert all(i.image.parent == tmp_path / "envcache" for i in items)


@pytest.mark.parametrize("name", ["llava_pretrain", "mme"])
def test_annotation_file_symlinked_outside_the_root_refused(tmp_path, name):
    """Issue 19 item 12: annotation files (JSON, parquet) as well as images stay inside the root."""
    root = tmp_path / name
    generate(name, root, seed=0, size="tiny")
    assert open_dataset(root, cache_dir=tmp_path / "cache").records()
    annotation = next(p for p in sorted(root.rglob("*")) if p.suffix in (".json", ".parquet")
                      and p.name != "DATASET.json")
    outside = tmp_path / f"outside{annotation.suffix}"
    annotation.rename(outside)
    os.symlink(outside, annotation)
    with pytest.raises(InputError, match=rf"{annotation.name}: resolves outside the dataset root"):
        open_dataset(root, cache_dir=tmp_path / "cache").records()
