"""The ``lossless`` codec: exact round trips of every image kind, determinism across
processes and CPU settings, the Huffman and fine-tuning variants, corrupt input, 16-bit
policy, and the training entry point."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gancomp import api
from gancomp.codecs import get_codec
from gancomp.errors import FormatError, InputError

from conftest import DATA, run_cli


def _rt(img: np.ndarray, **opts) -> bytes:
    data = api.encode_array(img, "lossless", **opts)
    out = api.decode_array(data)
    ref = img if img.ndim == 3 else img[:, :, None]
    assert out.shape == ref.shape and out.dtype == np.uint8
    assert np.array_equal(out, ref)
    return data


def test_rgb_roundtrip_beats_png(rgb):
    data = _rt(rgb)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    assert len(data) < len(buf.getvalue())


def test_gray_roundtrip(gray):
    data = _rt(gray)
    assert api.read_header(data).channels == 1


def test_rgba_and_gray_alpha_roundtrip(rgb_small, gray):
    rng = np.random.default_rng(1)
    alpha = rng.integers(0, 256, rgb_small.shape[:2], dtype=np.uint8)
    _rt(np.concatenate([rgb_small, alpha[:, :, None]], axis=2))
    _rt(np.concatenate([gray, gray[::-1]], axis=2))


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 37, 3), (23, 1, 3), (3, 5, 3), (7, 2, 1),
                                   (1, 9, 1), (5, 3, 3)])
def test_odd_sizes_and_noise(shape):
    rng = np.random.default_rng(sum(shape))
    _rt(rng.integers(0, 256, shape, dtype=np.uint8))


def test_extremes():
    img = np.zeros((9, 11, 3), np.uint8)
    img[::2] = 255
    _rt(img)
    _rt(np.full((6, 6, 3), 255, np.uint8))


def test_online_calibration_is_default(rgb):
    on = api.encode_array(rgb, "lossless")
    assert api.read_header(on).params["a"] == 1
    assert api.read_header(_rt(rgb, entropy="huffman")).params["a"] == 0


def test_huffman_variant(rgb_small, gray):
    a = _rt(rgb_small, entropy="huffman")
    b = _rt(rgb_small)
    assert a != b and api.decode(a).codec_name == "lossless"
    _rt(gray, entropy="huffman")
    _rt(np.zeros((1, 1, 3), np.uint8), entropy="huffman")


def test_finetune_paths(rgb_small):
    # "always" stores the updates even when they do not pay: exercises the decoder path
    forced = _rt(rgb_small, finetune="always")
    plain = _rt(rgb_small)
    chosen = _rt(rgb_small, finetune=True)
    assert api.read_header(forced).params["f"] == 1
    assert len(chosen) <= len(plain) or api.read_header(chosen).params["f"] == 0
    assert api.read_header(plain).params["f"] == 0


def test_bad_options(rgb_small):
    with pytest.raises(InputError):
        api.encode_array(rgb_small, "lossless", entropy="zip")
    with pytest.raises(InputError):
        api.encode_array(rgb_small, "lossless", quality=50)
    with pytest.raises(InputError):
        api.encode_array(rgb_small, "lossless", entropy="huffman", finetune=True)


def test_corrupt_streams_raise_formaterror(rgb_small):
    codec = get_codec("lossless")
    enc = codec.encode(rgb_small)
    h, w, _ = rgb_small.shape
    args = dict(width=w, height=h, channels=3, model_id=enc.model_id,
                model_sha256=enc.model_sha256[:16])
    bad_streams = [
        [enc.streams[0][: len(enc.streams[0]) // 2]] + enc.streams[1:],
        [enc.streams[0] + b"\0\0\0\0"] + enc.streams[1:],
        enc.streams[:2],
        [enc.streams[0], b"junk", enc.streams[2]],
    ]
    for streams in bad_streams:
        with pytest.raises(FormatError):
            codec.decode(enc.params, streams, **args)
    with pytest.raises(FormatError):
        codec.decode({"e": 0}, enc.streams, **args)
    data = bytearray(api.encode_array(rgb_small, "lossless"))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(FormatError):
        api.decode_array(bytes(data))


def test_cross_process_determinism(tmp_path, rgb):
    """Encode here; encode and decode again in processes with other thread counts and
    ATEN_CPU_CAPABILITY=default: the same bytes and the same pixels."""
    data = api.encode_array(rgb, "lossless")
    src = tmp_path / "in.png"
    Image.fromarray(rgb).save(src)
    for env in ({"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"},
                {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}):
        out = tmp_path / f"o{env['OMP_NUM_THREADS']}.gcz"
        r = run_cli("encode", str(src), str(out), "-c", "lossless", "-f", env=env)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == data
        (tmp_path / "x.gcz").write_bytes(data)
        png = tmp_path / "back.png"
        r = run_cli("decode", str(tmp_path / "x.gcz"), str(png), "-f", env=env)
        assert r.returncode == 0, r.stderr
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), rgb)


def test_cli_huffman_flag(tmp_path):
    out = tmp_path / "h.gcz"
    r = run_cli("encode", str(DATA / "camera_gray_64.png"), str(out), "-c", "lossless",
                "--entropy", "huffman")
    assert r.returncode == 0, r.stderr
    assert api.read_header(out.read_bytes()).params["e"] == 1


def test_16bit_refused(tmp_path):
    src = tmp_path / "deep.png"
    arr = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(arr).save(src)
    out = tmp_path / "deep.gcz"
    r = run_cli("encode", str(src), str(out), "-c", "lossless")
    assert r.returncode != 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "8-bit" in lines[-1] and "Traceback" not in r.stderr.decode()
    assert not out.exists()


@pytest.mark.parametrize("extra", [{}, {"context": "large", "pred_err": True}])
def test_tiny_training_run(tmp_path, monkeypatch, rgb_small, extra):
    import json

    from gancomp.train import lossless as train

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(dict(train.CONFIGS["tiny"], **extra)))
    assert train.main(["--config", str(cfg), "--data", str(DATA), "--out", str(tmp_path),
                       "--name", "lossless-tiny-test"]) == 0
    card = (tmp_path / "lossless-tiny-test.json").read_text()
    assert '"val_bpp_int"' in card
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(tmp_path))
    data = _rt(rgb_small, model="lossless-tiny-test")
    assert api.read_header(data).model_id == "lossless-tiny-test"
    _rt(rgb_small, model="lossless-tiny-test", finetune="always")


def test_training_refuses_kodak(tmp_path):
    from gancomp.train import lossless as train

    d = tmp_path / "kodak"
    d.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / "kodim01.png")
    with pytest.raises(SystemExit):
        train.list_images(d)


@pytest.mark.parametrize("gcz,src,mode", [("lossless_v2_chelsea.gcz", "chelsea_80x64.png", "RGB"),
                                          ("lossless_v2_camera_ft.gcz", "camera_gray_64.png", "L"),
                                          ("lossless_v2a_astronaut.gcz", "astronaut_128x96.png", "RGB")])
def test_golden_files_still_decode(gcz, src, mode):
    """Files written by the shipped model decode to their source exactly: without online
    calibration (the first two; the second with fine-tuning updates) and with it (the third).
    Guards the bitstream against silent changes."""
    out = api.decode_array((DATA / gcz).read_bytes())
    ref = np.asarray(Image.open(DATA / src).convert(mode))
    assert np.array_equal(out.reshape(ref.shape), ref)
