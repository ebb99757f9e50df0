import io

import numpy as np
import pytest
from PIL import Image

from gancomp import imageio
from gancomp.errors import InputError


def to_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_modes(rgb_small):
    base = Image.fromarray(rgb_small)
    assert imageio.decode_image_bytes(to_bytes(base.convert("L"))).pixels.shape[2] == 1
    assert imageio.decode_image_bytes(to_bytes(base.convert("LA"))).pixels.shape[2] == 2
    assert imageio.decode_image_bytes(to_bytes(base.convert("RGBA"))).pixels.shape[2] == 4
    pal = base.convert("P", palette=Image.ADAPTIVE, colors=16)
    assert imageio.decode_image_bytes(to_bytes(pal)).pixels.shape[2] == 3
    cmyk = imageio.decode_image_bytes(to_bytes(base.convert("CMYK"), "JPEG"))
    assert cmyk.pixels.shape[2] == 3 and cmyk.notes
    for fmt in ("BMP", "PPM", "TIFF", "WEBP"):
        assert imageio.decode_image_bytes(to_bytes(base, fmt)).pixels.shape == rgb_small.shape


def test_16bit_reduced_with_note():
    arr = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 31).astype(np.uint16)
    img = imageio.decode_image_bytes(to_bytes(Image.fromarray(arr)))
    assert img.pixels.dtype == np.uint8 and img.bit_depth == 16
    assert any("8 bits" in n for n in img.notes)


def test_exif_orientation_applied(rgb_small):
    base = Image.fromarray(rgb_small)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img = imageio.decode_image_bytes(to_bytes(base, "JPEG", exif=exif.tobytes()))
    assert img.pixels.shape[:2] == (rgb_small.shape[1], rgb_small.shape[0])


def test_icc_carried(rgb_small):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = imageio.decode_image_bytes(to_bytes(Image.fromarray(rgb_small), icc_profile=icc))
    assert img.icc == icc
    out = imageio.encode_image_bytes(img.pixels, "png", icc=img.icc)
    assert Image.open(io.BytesIO(out)).info.get("icc_profile") == icc


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_bad_images(data):
    with pytest.raises(InputError):
        imageio.decode_image_bytes(data)


def test_truncated_png(rgb_small):
    data = to_bytes(Image.fromarray(rgb_small))
    with pytest.raises(InputError):
        imageio.decode_image_bytes(data[: len(data) // 2])


def test_write_output_atomic_and_no_overwrite(tmp_path):
    p = tmp_path / "a.bin"
    imageio.write_output(str(p), b"one")
    with pytest.raises(InputError):
        imageio.write_output(str(p), b"two")
    imageio.write_output(str(p), b"two", force=True)
    assert p.read_bytes() == b"two"
    assert [f.name for f in tmp_path.iterdir()] == ["a.bin"]
    with pytest.raises(InputError):
        imageio.write_output(str(p), b"x", force=True, protect=str(p))


def test_outputs_get_the_umask_mode_not_0600(tmp_path):
    import os
    import stat

    from gancomp.imageio import write_output

    old = os.umask(0o022)
    try:
        out = tmp_path / "o.bin"
        write_output(str(out), b"abc")
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
    finally:
        os.umask(old)
