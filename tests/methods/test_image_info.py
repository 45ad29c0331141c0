"""image_info and image_size on images the tests draw: each kind of damage its own error, sizes exact, EXIF
orientation applied, the policy's cuts at and around each threshold, and a local run accounting for every row."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

import curate
from curate.config import pipeline_from_dict
from curate.errors import ConfigError
from curate.methods.images import ImageInfo, ImageSize
from curate.methods.images.probe import DEFAULT_MAX_PIXELS, ImageError, probe
from curate.policy import Rows
from testkit.helpers import captions, write_shards


def drawn(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.rectangle([x, y, x + w // 3, y + h // 3], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return img.convert(mode)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kw)
    return out.getvalue()


def animated_gif(frames: int = 4) -> bytes:
    images = [drawn(40, 30, seed=i) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)


def oriented_jpeg(w: int, h: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(drawn(w, h), "JPEG", exif=exif)


def png_header_claiming(w: int, h: int) -> bytes:
    """A PNG whose IHDR says w x h (correct CRC) over a tiny image's data: a decompression bomb's header."""
    data = bytearray(encode(drawn(8, 8), "PNG"))
    ihdr = struct.pack(">II", w, h) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def error_of(data, **kw) -> str:
    with pytest.raises(ImageError) as e:
        probe(data, **kw)
    return str(e.value)


# --- the probe -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, mode", [("PNG", "RGB"), ("PNG", "RGBA"), ("JPEG", "RGB"), ("JPEG", "L"),
                                       ("WEBP", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "CMYK")])
@pytest.mark.parametrize("verify", [False, True])
def test_format_size_and_mode_are_read_exactly(fmt, mode, verify):
    data = encode(drawn(123, 45, mode=mode), fmt)
    info = probe(data, verify=verify)
    assert (info.format, info.width, info.height, info.mode) == (fmt, 123, 45, mode)
    assert (info.frames, info.orientation, info.bytes) == (1, 1, len(data))
    assert info.aspect_ratio == pytest.approx(123 / 45)


def test_aspect_ratio_is_long_side_over_short_side_either_way():
    assert probe(encode(drawn(30, 90), "PNG")).aspect_ratio == 3.0
    assert probe(encode(drawn(90, 30), "PNG")).aspect_ratio == 3.0
    assert probe(encode(drawn(1, 1), "PNG")).aspect_ratio == 1.0


def test_an_animated_gif_and_webp_count_their_frames():
    assert probe(animated_gif(4)).frames == 4
    frames = [drawn(32, 32, seed=i) for i in range(3)]
    assert probe(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]), verify=True).frames == 3


@pytest.mark.parametrize("orientation, size", [(1, (300, 200)), (3, (300, 200)), (6, (200, 300)),
                                               (8, (200, 300)), (5, (200, 300))])
def test_exif_orientation_gives_the_displayed_size(orientation, size):
    info = probe(oriented_jpeg(300, 200, orientation))
    assert (info.width, info.height, info.orientation) == (*size, orientation)


def test_a_png_exif_chunk_before_the_pixels_is_read_without_decoding():
    exif = Image.Exif()
    exif[0x0112] = 6
    info = probe(encode(drawn(300, 200), "PNG", exif=exif))
    assert (info.width, info.height, info.orientation) == (200, 300, 6)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_the_header_path_never_decodes_pixels(fmt, monkeypatch):
    from PIL import ImageFile

    data = oriented_jpeg(120, 80, 6) if fmt == "JPEG" else encode(drawn(120, 80), fmt)

    def refuse(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert probe(data).format == fmt
    with pytest.raises(ImageError, match="AssertionError: decoded"):  # verify does decode
        probe(data, verify=True)


def test_displayed_size_matches_pillows_own_transpose():
    from PIL import ImageOps

    data = oriented_jpeg(300, 200, 6)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert (probe(data).width, probe(data).height) == shown.size


def test_null_and_empty_bytes_are_their_own_kinds():
    assert error_of(None).startswith("null_image:")
    assert error_of(b"").startswith("empty_bytes:")


@pytest.mark.parametrize("data", [b"not an image at all", bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                                                  np.uint8)),
                                  b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\x89PNG"])
def test_bytes_no_decoder_recognises_are_not_an_image(data):
    assert error_of(data).startswith("not_an_image:")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("verify", [False, True])
def test_a_file_cut_short_is_truncated_with_or_without_a_decode(fmt, verify):
    data = encode(drawn(200, 150, seed=3), fmt)
    assert error_of(data[: len(data) * 2 // 3], verify=verify).startswith("truncated_image:")


def test_a_jpeg_cut_short_behind_an_exif_thumbnail_is_still_truncated():
    exif = Image.Exif()
    exif[0x0112] = 1
    thumb = encode(drawn(16, 16), "JPEG")  # a second EOI marker, before the main scan
    data = encode(drawn(200, 150), "JPEG", exif=exif.tobytes() + thumb)
    assert probe(data).width == 200
    assert error_of(data[:-200]).startswith("truncated_image:")


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_a_known_signature_with_a_header_cut_short_is_corrupt_not_a_stranger(fmt):
    data = encode(drawn(200, 150), fmt)
    assert error_of(data[:12]).startswith(f"corrupt_image: starts like a {fmt} but its header does not read")


def test_a_jpeg_header_cut_short_is_truncated():  # Pillow's JPEG reader says so ("Truncated File Read")
    assert error_of(encode(drawn(200, 150), "JPEG")[:12]).startswith("truncated_image: OSError: Truncated File Read")


def test_only_verify_finds_damage_inside_the_pixel_data():
    data = bytearray(encode(drawn(200, 150, seed=5), "PNG"))
    idat = data.index(b"IDAT") + 4
    data[idat + 10: idat + 60] = bytes(50)  # the header and the end marker are intact
    assert probe(bytes(data)).width == 200
    assert error_of(bytes(data), verify=True).startswith("corrupt_image: bad pixels: OSError: broken data stream")


def test_a_gif_whose_later_frame_is_cut_is_caught_by_verify():
    data = animated_gif(4)
    cut = data[: len(data) - 40]
    assert error_of(cut, verify=True).split(":")[0] in {"truncated_image", "corrupt_image"}


def test_a_decompression_bomb_header_is_refused_without_decoding():
    bomb = png_header_claiming(100_000, 100_000)  # 10 G pixels: Pillow's own error threshold
    assert error_of(bomb).startswith("image_too_large:")
    just_over = png_header_claiming(10_000, 10_000)  # over our limit, under twice Pillow's
    assert 10_000 ** 2 > DEFAULT_MAX_PIXELS
    assert error_of(just_over).startswith("image_too_large: 10000x10000 is over")
    assert error_of(encode(drawn(20, 20), "PNG"), max_pixels=399).startswith("image_too_large: 20x20")
    assert probe(encode(drawn(20, 20), "PNG"), max_pixels=400).width == 20


def test_the_bomb_check_emits_no_warning(recwarn):
    error_of(png_header_claiming(10_000, 10_000))
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


# --- the stage --------------------------------------------------------------------------------------------------
def test_the_stage_gives_one_row_per_input_with_nulls_and_an_error_where_bad():
    images = [encode(drawn(64, 32), "PNG"), b"", None, oriented_jpeg(300, 200, 6), b"junk", animated_gif(3)]
    out = ImageInfo(workers=2).score(pa.table({"image": pa.array(images, pa.binary())}))
    assert out.column("width").to_pylist() == [64, None, None, 200, None, 40]
    assert out.column("height").to_pylist() == [32, None, None, 300, None, 30]
    assert out.column("format").to_pylist() == ["PNG", None, None, "JPEG", None, "GIF"]
    assert out.column("animated").to_pylist() == [False, None, None, False, None, True]
    assert out.column("frames").to_pylist() == [1, None, None, 1, None, 3]
    assert out.column("orientation").to_pylist() == [1, None, None, 6, None, 1]
    assert out.column("bytes").to_pylist()[0] == len(images[0])
    kinds = [e and e.split(":")[0] for e in out.column("error").to_pylist()]
    assert kinds == [None, "empty_bytes", "null_image", None, "not_an_image", None]
    assert out.schema.names == [*ImageInfo().outputs]


def test_paths_under_image_root_are_read_and_paths_that_leave_it_refused(tmp_path):
    (tmp_path / "a.png").write_bytes(encode(drawn(10, 20), "PNG"))
    stage = ImageInfo(image_root=str(tmp_path))
    out = stage.score(pa.table({"image": ["a.png", "missing.png", "../x.png", "/etc/passwd"]}))
    assert out.column("height").to_pylist() == [20, None, None, None]
    kinds = [e and e.split(":")[0] for e in out.column("error").to_pylist()]
    assert kinds == [None, "missing_file", "path_outside_root", "path_outside_root"]
    assert stage.check_input("image", pa.binary()) is not None and stage.check_input("image", pa.string()) is None
    assert ImageInfo().check_input("image", pa.string()) is not None


def test_an_all_null_column_of_null_type_is_rows_of_errors():
    stage = ImageInfo()
    assert stage.check_input("image", pa.null()) is None
    out = stage.score(pa.table({"image": pa.nulls(3)}))
    assert out.column("error").to_pylist() == ["null_image: no value"] * 3
    assert out.column("width").null_count == 3


def test_verify_is_keyed_and_the_pillow_version_is_part_of_the_key():
    import PIL

    assert ImageInfo(verify=True).identity() != ImageInfo().identity()
    assert ImageInfo().identity()["pillow"] == PIL.__version__


# --- the policy -------------------------------------------------------------------------------------------------
def decide(policy: ImageSize, widths, heights, formats):
    w, h = np.array(widths, np.float64), np.array(heights, np.float64)
    ratio = np.maximum(w, h) / np.minimum(w, h)
    cols = dict(zip(policy.columns, [w, h, ratio, np.array(formats, dtype=object)]))
    keep, reason, _ = policy.decide_rows(Rows(w, np.zeros(len(w), np.uint64), cols, "fp"))
    return keep.tolist(), reason.to_pylist()


def test_the_defaults_are_datacomps_basic_filter():
    policy = ImageSize()
    assert (policy.min_side, policy.max_aspect_ratio, policy.formats) == (200, 3.0, None)
    keep, reason = decide(policy, [200, 199, 600, 601, 200, 1000], [200, 400, 200, 200, 199, 1000], ["PNG"] * 6)
    assert keep == [True, False, True, False, False, True]
    assert reason == [None, "image_size: min side 199 < 200", None, "image_size: aspect ratio 3.005 > 3",
                      "image_size: min side 199 < 200", None]


def test_min_side_at_and_around_its_threshold():
    keep, reason = decide(ImageSize(min_side=64, max_aspect_ratio=None), [63, 64, 65, 32, 64], [100, 64, 65, 64, 63],
                          ["PNG"] * 5)
    assert keep == [False, True, True, False, False]
    assert reason == ["image_size: min side 63 < 64", None, None, "image_size: min side 32 < 64",
                      "image_size: min side 63 < 64"]


def test_aspect_ratio_at_and_around_its_threshold():
    keep, reason = decide(ImageSize(min_side=None, max_aspect_ratio=2.5), [250, 251, 100, 10, 1], [100, 100, 250, 26, 3],
                          ["PNG"] * 5)
    assert keep == [True, False, True, False, False]
    assert reason[1] == "image_size: aspect ratio 2.51 > 2.5" and reason[4] == "image_size: aspect ratio 3 > 2.5"


def test_formats_are_matched_in_pillows_names_and_aliases_are_read():
    policy = ImageSize(min_side=None, max_aspect_ratio=None, formats=["jpg", "png"])
    keep, reason = decide(policy, [10] * 4, [10] * 4, ["JPEG", "PNG", "GIF", "WEBP"])
    assert keep == [True, True, False, False]
    assert reason[2:] == ["image_size: format GIF not in [JPEG, PNG]", "image_size: format WEBP not in [JPEG, PNG]"]


def test_the_first_failed_check_names_the_row():
    keep, reason = decide(ImageSize(formats=["JPEG"]), [10, 4000, 1000], [100, 400, 1000], ["GIF", "GIF", "GIF"])
    assert keep == [False, False, False]
    assert reason == ["image_size: min side 10 < 200", "image_size: aspect ratio 10 > 3",
                      "image_size: format GIF not in [JPEG]"]


def test_with_every_check_off_every_row_is_kept():
    keep, reason = decide(ImageSize(min_side=None, max_aspect_ratio=None), [1, 5], [1000, 5], ["GIF", "PNG"])
    assert keep == [True, True] and reason == [None, None]


def test_bad_policy_settings_are_refused():
    with pytest.raises(ConfigError, match="not formats Pillow reads"):
        ImageSize(formats=["PNG", "NOPE"])
    with pytest.raises(ConfigError, match="width column"):
        ImageSize(column="image_info.format")


# --- through the engine ------------------------------------------------------------------------------------------
def demo_like_rows() -> dict[str, bytes | None]:
    """Image-caption rows as the demo has them (PNG, RGBA and RGB) plus one of each damage and size problem."""
    jpeg = encode(drawn(320, 240, seed=9), "JPEG")
    rows = {f"ok{i}": encode(drawn(200 + 17 * i, 210 + 9 * i, seed=i, mode="RGBA" if i % 2 else "RGB"), "PNG")
            for i in range(8)}
    rows.update({"jpeg": jpeg, "rotated": oriented_jpeg(640, 210, 6), "truncated": jpeg[: len(jpeg) // 2],
                 "empty": b"", "null": None, "random": bytes(np.random.default_rng(1).integers(0, 256, 999, np.uint8)),
                 "bomb": png_header_claiming(100_000, 100_000), "tiny": encode(drawn(12, 12), "PNG"),
                 "wide": encode(drawn(900, 250), "PNG"), "gif": animated_gif(3)})
    return rows


@pytest.mark.parametrize("verify", [False, True])
def test_a_local_run_accounts_for_every_row(tmp_path, verify):
    images = demo_like_rows()
    table = pa.table({"id": list(images), "image": pa.array(list(images.values()), pa.binary()),
                      "caption": captions(len(images))})
    data = write_shards(tmp_path / "data", table, 3)
    pipeline, _ = pipeline_from_dict({"name": "img", "id_column": "id",
                                      "stages": [{"type": "image_info", "verify": verify}],
                                      "policies": [{"type": "image_size", "formats": ["PNG", "JPEG"]}]})
    summary = curate.run(pipeline, data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert set(rows) == set(images)
    errors = {k: r["error"].split(":")[1].strip() for k, r in rows.items() if r["error"]}
    assert errors == {"truncated": "truncated_image", "empty": "empty_bytes", "null": "null_image",
                      "random": "not_an_image", "bomb": "image_too_large"}
    assert all(rows[k]["error"].startswith("image_info: ") for k in errors)
    assert {k for k, r in rows.items() if r["keep"]} == {*(f"ok{i}" for i in range(8)), "jpeg"}
    assert rows["tiny"]["drop_reason"] == "image_size: min side 12 < 200"
    assert rows["wide"]["drop_reason"] == "image_size: aspect ratio 3.6 > 3"
    assert rows["rotated"]["drop_reason"] == "image_size: aspect ratio 3.048 > 3"
    assert (rows["rotated"]["image_info.width"], rows["rotated"]["image_info.height"]) == (210, 640)
    assert rows["gif"]["drop_reason"] == "image_size: min side 30 < 200"
    counts = summary["policies"]["image_info"]
    assert (counts["in"], counts["kept"], counts["dropped"], counts["errored"]) == (len(images), 9, 4, 5)
    again = curate.run(pipeline, data, tmp_path / "run", executor="local")  # resumed: nothing recomputed
    assert again["result"] == summary["result"]


def write_tar(path, rows: dict[str, bytes | None], captions_: list[str]) -> None:
    """A WebDataset shard: `<key>.png` (or `.jpg` for JPEG bytes) and `<key>.txt` per row; no image member for None."""
    import tarfile

    with tarfile.open(path, "w") as tar:
        for (key, data), caption in zip(rows.items(), captions_):
            members = {"txt": caption.encode()}
            if data is not None:
                members["jpg" if data.startswith(b"\xff\xd8") or key == "random" else "png"] = data
            for ext, blob in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))


def test_webdataset_shards_give_the_parquet_inputs_manifest(tmp_path):
    # (the WebDataset reader takes jpg, jpeg, png and webp members as `image`: the GIF row is left out here)
    images = {k: v for k, v in demo_like_rows().items() if k != "gif"}
    texts = captions(len(images))
    keys = list(images)
    (tmp_path / "wds").mkdir()
    for i in range(3):
        part = keys[i * 6: (i + 1) * 6]
        write_tar(tmp_path / "wds" / f"part-{i}.tar", {k: images[k] for k in part}, texts[i * 6: (i + 1) * 6])
    table = pa.table({"key": keys, "image": pa.array(list(images.values()), pa.binary()), "caption": texts})
    write_shards(tmp_path / "pq", table, 3)
    config = {"name": "img", "id_column": "key", "stages": [{"type": "image_info"}],
              "policies": [{"type": "image_size"}]}
    manifests = {}
    for fmt in ("wds", "pq"):
        pipeline, _ = pipeline_from_dict({**config, "format": "webdataset" if fmt == "wds" else "parquet"})
        curate.run(pipeline, tmp_path / fmt, tmp_path / f"run-{fmt}", executor="local")
        rows = curate.load_manifest(tmp_path / f"run-{fmt}").to_pylist()
        manifests[fmt] = {r["id"]: {k: v for k, v in r.items() if k.startswith("image_info.") or
                                    k in ("keep", "drop_reason", "error")} for r in rows}
    assert set(manifests["wds"]) == set(images)
    assert manifests["wds"] == manifests["pq"]
    assert manifests["wds"]["truncated"]["error"].startswith("image_info: truncated_image")


@pytest.mark.slow
def test_local_and_ray_executors_give_the_same_manifest(tmp_path, shared_ray):
    pytest.importorskip("ray")
    images = demo_like_rows()
    table = pa.table({"id": list(images), "image": pa.array(list(images.values()), pa.binary())})
    data = write_shards(tmp_path / "data", table, 3)
    pipeline, _ = pipeline_from_dict({"name": "img", "id_column": "id", "stages": [{"type": "image_info"}],
                                      "policies": [{"type": "image_size", "min_side": 32}]})
    curate.run(pipeline, data, tmp_path / "local", executor="local")
    curate.run(pipeline, data, tmp_path / "ray", executor="ray", workers=2)
    assert curate.load_manifest(tmp_path / "local").equals(curate.load_manifest(tmp_path / "ray"))
