"""Sample adapters and image loading: every source, every mode, every bad row, with concrete values."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import random
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import badrows
from tests.kit import photo
from unifilter_hf.image_conversion import TRANSPARENCY_FILL, to_rgb
from unifilter_hf.image_loading import load_image
from unifilter_hf.row_layouts import ColumnMap, SchemaError, detect_schema, to_sample, try_to_sample
from unifilter_hf.sample import Sample, SampleError


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Local test servers must be reached directly, whatever proxy the machine has."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    # The servers these tests start listen on loopback, which rows may reach only on this opt-in.
    monkeypatch.setenv("UNIFILTER_ALLOW_PRIVATE_URLS", "127.0.0.0/8")


def reason_of(obj, **kwargs) -> str:
    with pytest.raises(SampleError) as info:
        load_image(obj, **kwargs)
    return info.value.reason


# ------------------------------------------------------------------------------------------- sources


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    path.write_bytes(badrows.png("astronaut"))
    return path


def test_every_source_form_gives_the_same_pixels(astronaut_png):
    expected = np.asarray(photo("astronaut", badrows.SIZE))
    data = astronaut_png.read_bytes()
    b64 = base64.b64encode(data).decode()
    sources = {
        "pil": photo("astronaut", badrows.SIZE),
        "str path": str(astronaut_png),
        "Path": astronaut_png,
        "file url": astronaut_png.as_uri(),
        "bytes": data,
        "bytearray": bytearray(data),
        "dict bytes": {"bytes": data, "path": "ignored.png"},
        "dict path": {"bytes": None, "path": str(astronaut_png)},
        "data uri": "data:image/png;base64," + b64,
        "bare base64": b64,
        "numpy": expected,
    }
    for name, source in sources.items():
        image = load_image(source)
        assert image.mode == "RGB", name
        np.testing.assert_array_equal(np.asarray(image), expected, err_msg=name)


def test_relative_path_resolves_against_root(astronaut_png):
    image = load_image("astronaut.png", root=astronaut_png.parent)
    assert image.size == (badrows.SIZE, badrows.SIZE)


@pytest.mark.parametrize(
    "source, fragment",
    [
        (b"", "empty file"),
        (b"GIF89a but not really", "not a recognized"),
        (None, "missing (None)"),
        (12345, "unsupported type int"),
        ({"bytes": None, "path": None}, "neither bytes nor path"),
        ("", "empty path"),
        ("data:image/png;base64,@@@", "invalid base64"),
        ("no/such/file.jpg", "file not found"),
    ],
)
def test_bad_sources_raise_sample_error(source, fragment):
    assert fragment in reason_of(source)


def test_directory_and_zero_size_image(tmp_path):
    assert "cannot read file" in reason_of(tmp_path)
    assert reason_of(Image.new("RGB", (0, 0))) == "image: empty image (0x0)"


def test_file_over_max_bytes(astronaut_png):
    assert "larger than max_bytes=100" in reason_of(astronaut_png, max_bytes=100)


# ------------------------------------------------------------------------------------------- decoding


def test_truncated_jpeg_fails_at_load_with_a_reason():
    assert reason_of(badrows.truncated_jpeg()) == "image: truncated file"


def test_corrupt_header_reports_unrecognized_format():
    assert reason_of(badrows.corrupt_bytes()) == "image: not a recognized image format"


def test_decompression_bomb_header_is_refused_before_decoding():
    reason = reason_of(badrows.bomb_png())  # 900 megapixels: decoding it would exhaust memory
    assert "decompression bomb" in reason and "900000000" in reason


def test_max_pixels_applies_before_decoding():
    data = badrows.jpeg("chelsea")  # 96x64
    assert reason_of(data, max_pixels=96 * 64 - 1) == "image: decompression bomb (96x64 = 6144 px > 6143)"
    assert load_image(data, max_pixels=96 * 64).size == (96, 64)
    # just under Pillow's own warning limit: our limit decides, with no Pillow warning or error
    assert "decompression bomb" in reason_of(badrows.bomb_png(width=9000, height=9000))


def test_mutated_files_only_ever_raise_sample_error():
    """Fuzz: truncations and byte flips of real JPEG/PNG files never escape as another exception."""
    rng = random.Random(0)
    originals = [badrows.jpeg("coffee"), badrows.png("coins"), badrows.gray16_png(), badrows.rgba_png()]
    outcomes = set()
    for data in originals:
        for _ in range(12):
            mutated = bytearray(data[: rng.randrange(1, len(data))] if rng.random() < 0.4 else data)
            for _ in range(rng.randrange(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                outcomes.add(load_image(bytes(mutated)).mode)
            except SampleError as err:
                outcomes.add("error")
                assert err.reason.startswith("image: ")
    assert outcomes <= {"RGB", "error"} and "error" in outcomes


# ------------------------------------------------------------------------------------------- modes


def test_gray16_scales_to_8_bit_without_clipping():
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    assert [to_rgb(image).getpixel((x, 0)) for x in range(4)] == [
        (0, 0, 0),
        (1, 1, 1),
        (128,) * 3,
        (255,) * 3,
    ]


def test_gray16_png_photo_round_trips_to_its_8_bit_values():
    expected = np.asarray(photo("camera", badrows.SIZE))
    image = load_image(badrows.gray16_png("camera"))
    np.testing.assert_array_equal(np.asarray(image)[..., 0], expected)


def test_int32_and_float_gray_modes():
    sixteen_bit = Image.fromarray(np.array([[0, 32768, 65535, 70000]], dtype=np.int32))
    eight_bit = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))
    unit_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    wide_float = Image.fromarray(np.array([[-5.0, 100.4, 300.0, np.nan]], dtype=np.float32))
    assert sixteen_bit.mode == eight_bit.mode == "I" and unit_float.mode == "F"
    assert np.asarray(to_rgb(sixteen_bit))[0, :, 0].tolist() == [0, 128, 255, 255]
    assert np.asarray(to_rgb(eight_bit))[0, :, 0].tolist() == [0, 100, 255]
    assert np.asarray(to_rgb(unit_float))[0, :, 0].tolist() == [0, 128, 255]
    assert np.asarray(to_rgb(wide_float))[0, :, 0].tolist() == [0, 100, 255, 0]


def test_rgba_transparent_pixels_become_the_fill():
    assert TRANSPARENCY_FILL == (255, 255, 255)
    source = photo("astronaut", badrows.SIZE)
    image = load_image(badrows.rgba_png("astronaut"))
    assert image.mode == "RGB" and image.size == source.size
    assert image.getpixel((0, 0)) == TRANSPARENCY_FILL  # left half: alpha 0
    assert image.getpixel((90, 50)) == source.getpixel((90, 50))  # right half: opaque, unchanged


def test_half_transparent_pixel_blends_with_white():
    image = Image.new("RGBA", (1, 1), (0, 0, 0, 128))
    assert to_rgb(image).getpixel((0, 0)) == (127, 127, 127)
    assert to_rgb(Image.new("LA", (1, 1), (0, 0))).getpixel((0, 0)) == TRANSPARENCY_FILL


def test_palette_transparency_becomes_the_fill():
    image = load_image(badrows.palette_png_with_transparency("chelsea"))
    assert image.mode == "RGB" and image.size == photo("chelsea", badrows.SIZE).size
    assert image.getpixel((3, 3)) == TRANSPARENCY_FILL
    assert image.getpixel((50, 40)) != TRANSPARENCY_FILL


def test_cmyk_jpeg_converts_to_rgb_close_to_the_photo():
    source = np.asarray(photo("coffee", badrows.SIZE), dtype=np.float64)
    decoded = Image.open(io.BytesIO(badrows.cmyk_jpeg("coffee")))
    assert decoded.mode == "CMYK"
    image = load_image(badrows.cmyk_jpeg("coffee"))
    assert image.mode == "RGB" and image.size == (source.shape[1], source.shape[0])
    assert np.abs(np.asarray(image, dtype=np.float64) - source).mean() < 8


def test_bilevel_and_gray_modes():
    assert to_rgb(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255, 255, 255)
    gray = load_image(photo("moon", 64))
    assert gray.mode == "RGB"
    r, g, b = gray.getpixel((10, 10))
    assert r == g == b == photo("moon", 64).getpixel((10, 10))


@pytest.mark.parametrize(
    "mode", ["1", "L", "P", "LA", "La", "PA", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F"]
)
def test_every_pillow_mode_becomes_rgb(mode):
    cat = photo("chelsea", 32)  # 32x21
    # Pillow cannot convert RGB to these modes directly: go through a neighbour mode
    via = {"La": "LA", "RGBa": "RGBA", "PA": "P", "I": "L", "F": "L"}.get(mode)
    source = cat.convert(via).convert(mode) if via else cat.convert(mode)
    assert source.mode == mode
    image = load_image(source)
    assert image.mode == "RGB" and image.size == (32, 21)


def test_exif_orientation_is_applied():
    image = load_image(badrows.exif_rotated_jpeg("rocket"))
    assert photo("rocket", badrows.SIZE).size == (96, 64)
    assert image.size == (64, 96)


# ------------------------------------------------------------------------------------------- URLs


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """A local HTTP server on 127.0.0.1 serving a real photo; yields its base URL."""
    root = tmp_path_factory.mktemp("www")
    (root / "chelsea.jpg").write_bytes(badrows.jpeg("chelsea"))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_loads_a_real_photo(http_root):
    image = load_image(f"{http_root}/chelsea.jpg")
    assert image.mode == "RGB" and image.size == (96, 64)
    assert load_image({"bytes": None, "path": f"{http_root}/chelsea.jpg"}).size == (96, 64)


def test_url_errors(http_root):
    assert reason_of(f"{http_root}/missing.jpg") == "image: URL fetch failed (HTTP 404)"
    assert "larger than max_bytes=500" in reason_of(f"{http_root}/chelsea.jpg", max_bytes=500)


def test_unreachable_url_is_an_error_row():
    assert "URL unreachable" in reason_of(badrows.closed_port_url(), timeout=2.0)


def test_silent_server_errors_within_the_timeout():
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.jpg"
        reason = reason_of(url, timeout=0.5)
    assert "timed out after 0.5s" in reason


# ------------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize(
    "columns, schema",
    [
        (["image", "text"], "caption"),
        (["jpg", "txt", "json", "__key__", "__url__"], "caption"),
        (["png", "json"], "caption"),
        (["webp", "caption"], "caption"),
        (["Image_URL", "Caption"], "caption"),
        (["images", "texts", "metadata", "general_metadata"], "document"),
        (["text_list", "image_info", "url", "similarity_matrix"], "mmc4"),
    ],
)
def test_detect_schema(columns, schema):
    assert detect_schema(columns) == schema


def test_detect_columns_keeps_the_original_names():
    assert ColumnMap.detect(["JPG", "TXT"]) == ColumnMap(image="JPG", text="TXT")
    with pytest.raises(SchemaError):  # a bare "url" is a page address (C4, OBELICS), never an image
        ColumnMap.detect(["url", "text"])


def test_detect_schema_error_lists_the_columns():
    with pytest.raises(SchemaError) as info:
        detect_schema(["picture", "description"])
    message = str(info.value)
    assert "['description', 'picture']" in message and "ColumnMap" in message


def test_column_map_validation_and_dicts():
    assert ColumnMap.coerce({"image": "URL", "text": "TEXT"}).schema == "caption"
    with pytest.raises(ValueError):
        ColumnMap(image="jpg")  # incomplete group
    with pytest.raises(ValueError):
        ColumnMap(image="jpg", text="txt", images="images", texts="texts")  # two groups
    with pytest.raises(ValueError):
        ColumnMap.coerce({"picture": "x"})


def test_explicit_columns_override_detection():
    pic = photo("chelsea", 64)
    row = {"picture": pic, "alt": "A cat.", "image": "unused", "text": "unused"}
    sample = to_sample(row, {"image": "picture", "text": "alt"})
    assert sample.texts == ["A cat."] and sample.images[0].size == pic.size
    assert try_to_sample({"picture": pic}, ColumnMap(image="picture", text="alt"))[1].startswith(
        "row: missing column 'alt'"
    )


# ------------------------------------------------------------------------------------------- adapters


def test_caption_row():
    sample = to_sample({"image": photo("astronaut", 64), "text": "An astronaut. <image> tag kept"})
    assert isinstance(sample, Sample) and sample.kind == "caption"
    assert sample.texts == ["An astronaut. <image> tag kept"]  # the processor, not the adapter, escapes tags
    assert sample.images[0].mode == "RGB" and sample.meta == {"dropped": [], "schema": "caption"}


def test_webdataset_rows():
    jpg = badrows.jpeg("china")
    assert to_sample({"__key__": "1", "jpg": jpg, "txt": b"A temple."}).texts == ["A temple."]
    assert to_sample({"png": badrows.png("flower"), "json": '{"caption": "A flower."}'}).texts == [
        "A flower."
    ]
    assert try_to_sample({"jpg": jpg, "txt": b"\xff\xfe"})[1] == "caption: text is not valid UTF-8"
    assert try_to_sample({"jpg": jpg, "json": {"width": 3}})[1] == "caption: missing text (None)"


def test_caption_checks_text_before_fetching_the_image():
    reason = try_to_sample({"image": badrows.closed_port_url(), "text": ""})[1]
    assert reason == "caption: empty text"


def test_document_keeps_order_and_slots():
    rocket, coins = photo("rocket", 48), photo("coins", 48)
    row = {"texts": ["Intro.", None, "", None, "End."], "images": [None, rocket, None, coins, None]}
    sample = to_sample(row)
    assert sample.kind == "document" and sample.meta == {"dropped": [], "schema": "document"}
    assert sample.texts == ["Intro.", None, "", None, "End."]  # text slots are verbatim
    assert [im.size for im in sample.images if im] == [rocket.size, coins.size]


def test_document_drops_and_records_unusable_images(tmp_path):
    row = {
        "texts": ["A.", None, None, None, "B."],
        "images": [None, badrows.truncated_jpeg(), photo("chelsea", 48), badrows.one_pixel(), None],
    }
    sample = to_sample(row)
    assert sample.texts == ["A.", None, "B."] and sample.num_images == 1
    assert sample.meta["dropped"] == ["image 1: truncated file", "image 3: 1-pixel image (1x1)"]


def test_document_max_images_keeps_the_first_in_reading_order():
    pics = [photo(name, 32) for name in ("rocket", "coffee", "chelsea")]
    row = {"texts": [None, None, "mid", None], "images": [pics[0], pics[1], None, pics[2]]}
    sample = to_sample(row, max_images=2)
    assert sample.texts == [None, None, "mid"] and sample.num_images == 2
    assert sample.meta["dropped"] == ["image 3: over max_images=2"]


def test_numpy_lists_are_accepted():
    row = {"texts": np.array(["Hello.", None], dtype=object), "images": np.array([None, None], dtype=object)}
    row["images"][1] = photo("coins", 32)
    assert to_sample(row).num_images == 1


def test_mmc4_inserts_images_before_their_sentence(tmp_path):
    (tmp_path / "r.png").write_bytes(badrows.png("rocket"))
    flower = base64.b64encode(badrows.jpeg("flower")).decode()
    row = {
        "text_list": ["First.", "Second.", "Third."],
        "image_info": [
            {"image_name": "r.png", "raw_url": "http://127.0.0.1:9/r.png", "matched_text_index": 2},
            {"image_name": "f.jpg", "matched_text_index": 0, "image_base64": flower},
            {"image_name": "c.jpg", "matched_text_index": 2, "image_bytes": badrows.jpeg("chelsea")},
            {"image_name": "gone.jpg", "matched_text_index": 1},
        ],
    }
    sample = to_sample(row, image_root=tmp_path)
    assert sample.texts == [None, "First.", "Second.", None, None, "Third."]
    sizes = [im.size for im in sample.image_list]
    assert sizes == [photo("flower", 96).size, photo("rocket", 96).size, photo("chelsea", 96).size]
    assert sample.meta["schema"] == "mmc4"
    assert sample.meta["dropped"] == [f"image 3: file not found: {tmp_path / 'gone.jpg'}"]


def test_mmc4_without_root_uses_raw_url():
    row = {
        "text_list": ["Only sentence."],
        "image_info": [
            {"image_name": "x.jpg", "raw_url": badrows.closed_port_url(), "matched_text_index": 0},
            {"image_name": "y.jpg", "matched_text_index": 0},
        ],
    }
    sample = to_sample(row, on_image_error="score_rest")
    assert sample.texts == ["Only sentence."]
    assert "image 0: URL unreachable" in sample.meta["dropped"][0]
    assert sample.meta["dropped"][1] == (
        "image 1: no image data (image_base64, image_bytes, image, image_name or raw_url)"
    )


def test_image_error_policies_for_documents_that_lost_images():
    good, bad = Image.new("RGB", (8, 8)), b"not an image"
    lost_one = {"texts": ["Intro.", None, None], "images": [None, good, bad]}
    lost_all = {"texts": ["Intro.", None], "images": [None, bad]}
    # default: what is left is scored while an image remains; a document that lost them all is an error
    assert to_sample(lost_one).num_images == 1
    assert try_to_sample(lost_all)[1] == (
        "document: all images failed to load (image 1: not a recognized image format)"
    )
    assert try_to_sample(lost_one, on_image_error="fail")[1] == (
        "document: 1 of 2 images failed to load (image 2: not a recognized image format)"
    )
    text_only = to_sample(lost_all, on_image_error="score_rest")
    assert text_only.num_images == 0 and text_only.meta["dropped"] == ["image 1: not a recognized image format"]
    # drops by design (tracking pixels, the max_images cap) are not failures
    pixel = {"texts": ["Intro.", None], "images": [None, Image.new("RGB", (1, 1))]}
    assert to_sample(pixel, on_image_error="fail").num_images == 0


def test_joint_builder_caption_rows_are_read_as_captions():
    image = Image.new("RGB", (8, 8))
    joint = {"images": [image, None], "texts": [None, "a black square"], "kind": "caption"}
    sample = to_sample(joint)
    assert sample.kind == "caption" and sample.texts == ["a black square"]
    assert to_sample({**joint, "kind": "document"}).kind == "document"


def test_non_mapping_row():
    assert try_to_sample(["image", "text"]) == (None, "row: expected a mapping, got list")


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("rows")
    return badrows.bad_rows(root), badrows.good_rows(root), root


def _outcome(case: badrows.RowCase, row, root) -> str | None:
    """None when ``row`` behaves as ``case`` says, else a description of the mismatch.

    The rows name their files by absolute paths inside ``root``, the data folder they are read from.
    """
    sample, reason = try_to_sample(row, image_root=root)
    if case.expect == "error":
        return None if reason is not None and case.reason in reason else f"got {reason or sample.meta}"
    if reason is not None:
        return f"unexpected error {reason!r}"
    if sample.image_list and any(im.mode != "RGB" for im in sample.image_list):
        return "non-RGB image"
    dropped = "; ".join(sample.meta["dropped"])
    ok = case.reason in dropped if case.reason else not dropped
    return None if ok else f"dropped {dropped!r}, expected {case.reason!r}"


def test_bad_rows_cover_at_least_15_kinds_with_expected_outcomes(cases):
    bad, good, root = cases
    assert len({c.kind for c in bad}) == len(bad) >= 15
    assert {c.expect for c in bad} == {"ok", "error"} and {c.expect for c in good} == {"ok"}
    assert {c.schema for c in bad} >= {"caption", "document", "mmc4"}
    failures = {c.kind: _outcome(c, c.row, root) for c in bad + good}
    assert {kind: msg for kind, msg in failures.items() if msg} == {}


def test_rows_survive_a_datasets_round_trip(cases):
    """Each row alone makes a one-row ``datasets.Dataset`` and reads back with the same outcome."""
    from datasets import Dataset

    bad, good, root = cases
    failures = {}
    for case in bad + good:
        if not case.arrow:
            continue
        row = Dataset.from_list([case.row])[0]
        if message := _outcome(case, row, root):
            failures[case.kind] = message
    assert failures == {}
