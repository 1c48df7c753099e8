"""Hostile files and arguments: bounded memory, one-line errors, no lost runs, the load
guarantee (every shape checked before anything is written). Files are made in the tests;
where memory is the point, a subprocess measures its own peak RSS."""
import gzip
import os
import re
import stat
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import nnjit
from nnjit import idx, serialize, train
from nnjit.serialize import StateFileError

from conftest import flat_arrays
from test_train import _mnist_folder, _model, _trained

IDX_IMAGES = bytes([0, 0, 8, 3]) + struct.pack(">III", 200, 28, 28)
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# test_train._model, for subprocesses
MODEL = ("nnjit.Sequential(nnjit.Linear(5, 8), nnjit.BatchNormalization(0.5), "
         "nnjit.ChannelwiseScaling(8), nnjit.ReLU(), nnjit.Sequential(nnjit.Linear(8, 3)), "
         "nnjit.LogSoftMax())")


def _peak_rss_growth_mb(code):
    """Runs code in a fresh interpreter (nnjit imported first); returns (MB its peak RSS
    grew by while running code, what it printed)."""
    script = ("import resource, nnjit, nnjit.idx, nnjit.train\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              f"{code}\n"
              "print('growth', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return float(lines[-1].split()[1]), "\n".join(lines[:-1])


def _refusal(call):
    return (f"try:\n    {call}\n    print('accepted')\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)")


# ---------------------------------------------------------------- IDX files
def test_gzip_bomb_is_refused_within_bounded_memory(tmp_path):
    """A .gz whose header declares 200 images but which inflates to 256 MB: refused after
    reading the declared 156,800 bytes plus one."""
    folder = tmp_path / "data"
    folder.mkdir()
    _mnist_folder(folder, gz=True)
    bomb = folder / "train-images-idx3-ubyte.gz"
    zeros = bytes(16 << 20)
    with gzip.open(bomb, "wb", compresslevel=1) as out:
        out.write(IDX_IMAGES)
        for _ in range(16):
            out.write(zeros)
    assert bomb.stat().st_size < 2 << 20
    growth, printed = _peak_rss_growth_mb(_refusal(f"nnjit.idx.read_idx({str(bomb)!r})"))
    assert printed.startswith("IDXError") and "more data after the 156800 bytes" in printed
    assert growth < 64, f"peak RSS grew by {growth} MB"
    with pytest.raises(SystemExit, match="more data after"):
        train.main(["--data", str(folder), "--epochs", "0"])


def test_plain_file_longer_than_its_header_is_refused_without_reading(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    with open(path, "wb") as out:
        out.write(IDX_IMAGES)
        out.truncate(8 << 30)  # sparse: 8 GiB that take no disk
    growth, printed = _peak_rss_growth_mb(_refusal(f"nnjit.idx.read_idx({str(path)!r})"))
    assert printed.startswith("IDXError") and "bytes after the data" in printed
    assert growth < 16, f"peak RSS grew by {growth} MB"


@pytest.mark.parametrize("gz", [False, True])
def test_headers_declaring_impossible_sizes_are_one_line_errors(tmp_path, gz):
    cases = {
        # dimensions whose product wraps int64 (and is ~2**64 bytes)
        "wraps": (bytes([0, 0, 8, 3]) + struct.pack(">III", 2**22, 2**21, 2**21) + b"x" * 64,
                  "more than a .gz" if gz else "truncated"),
        "255 dims": (bytes([0, 0, 8, 255]) + struct.pack(">I", 1) * 255, "255 dimensions"),
        "empty body, 4 GB claimed": (bytes([0, 0, 0x0E, 1]) + struct.pack(">I", 2**29),
                                     "more than a .gz" if gz else "truncated"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / ("x.gz" if gz else "x")
        path.write_bytes(gzip.compress(data) if gz else data)
        with pytest.raises(idx.IDXError, match=message):
            idx.read_idx(path)


def test_corrupt_deflate_data_is_an_idx_error(tmp_path):
    good = bytearray(gzip.compress(IDX_IMAGES + bytes(200 * 28 * 28)))
    good[len(good) // 2] ^= 0xFF
    good[len(good) // 2 + 1] ^= 0x55
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(good))
    with pytest.raises(idx.IDXError, match="x.gz: "):
        idx.read_idx(path)


def test_zero_images_and_unreadable_files_reach_the_command_line_as_one_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _mnist_folder(folder)
    idx.write_idx(folder / "train-images-idx3-ubyte", np.zeros((0, 6, 6), np.uint8))
    idx.write_idx(folder / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(SystemExit, match="holds no images"):
        train.main(["--data", str(folder), "--epochs", "0"])
    (folder / "train-images-idx3-ubyte").unlink()
    os.mkdir(folder / "train-images-idx3-ubyte.gz")  # a folder where a file should be
    with pytest.raises(SystemExit, match="no train-images-idx3-ubyte file"):
        train.main(["--data", str(folder), "--epochs", "0"])


@pytest.mark.skipif(AS_ROOT, reason="root reads any file")
def test_unreadable_data_file_is_one_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _mnist_folder(folder)
    os.chmod(folder / "train-images-idx3-ubyte", 0)
    with pytest.raises(SystemExit, match="Permission denied"):
        train.main(["--data", str(folder), "--epochs", "0"])


def test_images_are_scaled_exactly_as_before(tmp_path):
    """Scaling in float32 gives the float32 rounding of pixel / 255 for every pixel value."""
    path = tmp_path / "images"
    labels = tmp_path / "labels"
    idx.write_idx(path, np.arange(256, dtype=np.uint8).reshape(1, 16, 16))
    idx.write_idx(labels, np.zeros(1, np.uint8))
    pixels, _ = idx._images_and_labels(path, labels)
    np.testing.assert_array_equal(pixels[0], (np.arange(256) / 255.0).astype(np.float32))


# ---------------------------------------------------------------- weights files
def _saved(tmp_path, name="m.npz"):
    model = _model()
    _, state = _trained(model)
    path = tmp_path / name
    nnjit.save(path, model, state)
    return path, model, state


def _rewrite(path, out, change):
    """Copies the .npz at path to out, members passed through change(name, array) -> array
    (None drops the member)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    arrays = {k: change(k, v) for k, v in arrays.items()}
    np.savez(out, **{k: v for k, v in arrays.items() if v is not None})
    return out


def _refused_and_unchanged(path, message, model=None):
    model = model or _model()
    before = [a.copy() for a in flat_arrays(model.getParameters())]
    with pytest.raises(StateFileError, match=message) as error:
        nnjit.load(path, model)
    assert all(np.array_equal(a, b) for a, b in zip(before, flat_arrays(model.getParameters())))
    assert model[1].moving_mean is None
    return error


def test_unused_huge_member_is_never_read(tmp_path):
    """A 256 MB member the model does not use, deflated into a small file: load succeeds
    without decompressing it."""
    path, _, _ = _saved(tmp_path)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (33554432,), }"
    header = header.ljust(118) + "\n"
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("junk.npy", "w", force_zip64=True) as member:
            member.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
            zeros = bytes(16 << 20)
            for _ in range(16):
                member.write(zeros)
    assert path.stat().st_size < 2 << 20
    growth, printed = _peak_rss_growth_mb(
        f"nnjit.load({str(path)!r}, {MODEL})\nprint('loaded')")
    assert printed == "loaded"
    assert growth < 64, f"peak RSS grew by {growth} MB"


def test_member_header_claiming_gigabytes_over_an_empty_body_is_refused(tmp_path):
    saved, _, _ = _saved(tmp_path)
    path = _rewrite(saved, tmp_path / "claim.npz", lambda k, v: None if k.endswith("moving_mean") else v)
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8589934592,), }".ljust(118) + "\n"
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("model/1/moving_mean.npy",
                         b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    growth, printed = _peak_rss_growth_mb(
        _refusal(f"nnjit.load({str(path)!r}, {MODEL})"))
    assert printed.startswith("StateFileError") and "declares" in printed
    assert growth < 64


def test_truncated_flipped_and_wrong_kind_of_files(tmp_path):
    path, _, _ = _saved(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    _refused_and_unchanged(truncated, "not a readable .npz file")
    with zipfile.ZipFile(path) as archive:  # flip a byte inside W's data: only the CRC sees it
        info = archive.getinfo("model/0/W.npy")
    flipped = tmp_path / "flipped.npz"
    body = bytearray(data)
    body[info.header_offset + 30 + len(info.filename) + len(info.extra) + 130] ^= 0x01
    flipped.write_bytes(bytes(body))
    _refused_and_unchanged(flipped, "corrupt|CRC")
    npy = tmp_path / "weights.npy"
    np.save(npy, np.zeros(3))
    _refused_and_unchanged(npy, "not a readable .npz file")
    raw = tmp_path / "raw.npz"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(raw, "w") as out:
        for name in source.namelist():
            out.writestr(name, b"raw bytes, no header" if name == "model/0/W.npy" else source.read(name))
    _refused_and_unchanged(raw, "model/0/W: not an .npy array")


def test_batchnorm_statistics_of_the_wrong_length_change_nothing(tmp_path):
    path, _, _ = _saved(tmp_path)
    bad = _rewrite(path, tmp_path / "bad.npz",
                   lambda k, v: np.zeros(5, v.dtype) if k.endswith("moving_mean") else v)
    _refused_and_unchanged(bad, r"model/1/moving_mean: the file has float32 \(5,\), the model "
                                r"needs float \(8,\)")
    both = _rewrite(path, tmp_path / "both.npz",
                    lambda k, v: np.zeros(5, v.dtype) if "moving" in k else v)
    _refused_and_unchanged(both, "moving_variance")
    # A batch norm with no neighbour fixing the width: the two statistics must agree.
    lonely = nnjit.Sequential(nnjit.BatchNormalization(0.5))
    mixed = tmp_path / "mixed.npz"
    np.savez(mixed, format=np.array("nnjit-1"), **{"model/0/moving_mean": np.zeros(4, np.float32),
                                                    "model/0/moving_variance": np.ones(3, np.float32)})
    with pytest.raises(StateFileError, match="different lengths"):
        nnjit.load(mixed, lonely)
    assert lonely[0].moving_mean is None


@pytest.mark.parametrize("key, value, message", [
    ("optimizer/m/abc", np.zeros(3, np.float32), "not an optimizer buffer"),
    ("optimizer/x", np.array(1), "not an optimizer buffer"),
    ("optimizer/t", np.array(-1), "step count must be 0 or more"),
    ("optimizer/t", np.array("x"), "step count must be an integer"),
    ("optimizer/t", np.array(np.nan), "step count must be an integer"),
    ("optimizer/m", np.array(0.5), "not an optimizer buffer"),
    ("optimizer/m/0", "nan", "NaN or infinite"),
    ("optimizer/v/2", "negative", "non-negative"),
    ("optimizer/m/0", "reshaped", r"kept flat"),
    ("optimizer/m/99", np.zeros(3, np.float32), "the model has 6 parameters"),
    ("optimizer/v/1", None, r"optimizer/v: no buffer for parameter\(s\) \[1\]"),
    ("optimizer/t", None, "Adam's state needs m, v and t"),
])
def test_bad_optimizer_state_is_refused_at_load(tmp_path, key, value, message):
    path, _, _ = _saved(tmp_path)

    def change(k, v):
        if k != key:
            return v
        if isinstance(value, str):
            return {"nan": np.where(np.arange(v.size) == 1, np.nan, v).astype(v.dtype),
                    "negative": -np.abs(v) - 1, "reshaped": v.reshape(1, -1)}[value]
        return value
    bad = _rewrite(path, tmp_path / "bad.npz", change)
    if key in ("optimizer/m/abc", "optimizer/x", "optimizer/m", "optimizer/m/99"):
        with zipfile.ZipFile(bad, "a") as archive:  # added beside the good state
            with archive.open(key + ".npy", "w") as member:
                np.lib.format.write_array(member, value)
    _refused_and_unchanged(bad, message)


def test_complete_optimizer_state_still_loads_and_trains(tmp_path):
    path, model, state = _saved(tmp_path)
    fresh = _model()
    loaded = nnjit.load(path, fresh)
    assert loaded["t"] == state["t"] and set(loaded) == {"m", "v", "t"}
    _trained(fresh)  # and Adam continues from it (no exception, no reset)


# ---------------------------------------------------------------- saving
def test_save_keeps_permissions_and_names_its_temporary(tmp_path, monkeypatch):
    path, model, state = _saved(tmp_path)
    os.chmod(path, 0o640)
    seen = []
    real_savez = np.savez

    def spying_savez(out, **arrays):
        seen.extend(os.listdir(tmp_path))
        return real_savez(out, **arrays)
    monkeypatch.setattr(serialize.np, "savez", spying_savez)
    nnjit.save(path, model, state)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert any(name.startswith(".m.npz.partial-") for name in seen), seen
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    umask = os.umask(0)
    os.umask(umask)
    new = tmp_path / "new.npz"
    nnjit.save(new, model, state)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o666 & ~umask


def test_interrupted_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path, model, state = _saved(tmp_path)
    before = path.read_bytes()

    def failing_savez(out, **arrays):
        out.write(b"half a file")
        raise KeyboardInterrupt
    monkeypatch.setattr(serialize.np, "savez", failing_savez)
    with pytest.raises(KeyboardInterrupt):
        nnjit.save(path, model, state)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_to_a_folder_is_refused_before_writing(tmp_path):
    model = _model()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        nnjit.save(tmp_path, model)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- the command line
@pytest.mark.parametrize("argv, message", [
    (["--lr", "nan"], "--lr: must be a positive finite number"),
    (["--lr", "inf"], "--lr: must be a positive finite number"),
    (["--lr", "-1"], "--lr: must be a positive finite number"),
    (["--momentum", "-5"], r"--momentum: must be in \[0, 1\)"),
    (["--seed", "-1"], r"--seed: must be in \[0, 2\*\*32\)"),
    (["--seed", "4294967296"], r"--seed: must be in \[0, 2\*\*32\)"),
    (["--hidden", "1000000000"], "--hidden: must be at most"),
    (["--epochs", "-1"], "--epochs: must be 0 or more"),
])
def test_bad_arguments_are_parse_time_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err.strip().splitlines()[-1])


def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _mnist_folder(folder)
    with pytest.raises(SystemExit, match="GiB with gradients and optimizer state, more than"):
        train.main(["--data", str(folder), "--hidden", "1048576", "1048576", "--epochs", "0"])


@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_bad_destinations_stop_the_run_before_training(tmp_path, option, capsys):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    folder = tmp_path / "data"
    folder.mkdir()
    _mnist_folder(folder)
    base = ["--data", str(folder), "--epochs", "1"]
    with pytest.raises(SystemExit, match=f"{option}: .* is a folder"):
        train.main(base + [option, str(tmp_path)])
    assert "epoch" not in capsys.readouterr().out
    if option == "--plot":
        with pytest.raises(SystemExit, match="unknown image format 'xyz'"):
            train.main(base + ["--plot", str(tmp_path / "x.xyz")])
    with pytest.raises(SystemExit, match="no folder"):
        train.main(base + [option, str(tmp_path / "missing" / "x.png")])


@pytest.mark.skipif(AS_ROOT, reason="root writes anywhere")
def test_unwritable_destination_stops_the_run_before_training(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    with pytest.raises(SystemExit, match="--save: cannot write in"):
        train.main(["--save", str(locked / "w.npz"), "--epochs", "1"])


def test_command_line_warns_about_unused_classes_and_non_finite_weights(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    _mnist_folder(folder)
    labels = idx.read_idx(folder / "train-labels-idx1-ubyte")
    labels[0] = 255
    idx.write_idx(folder / "train-labels-idx1-ubyte", labels)
    weights = tmp_path / "w.npz"
    train.main(["--data", str(folder), "--epochs", "0", "--hidden", "4", "--save", str(weights)])
    assert "256 outputs, but only 5 of those classes occur" in capsys.readouterr().err
    bad = _rewrite(weights, tmp_path / "nan.npz",
                   lambda k, v: np.full_like(v, np.nan) if k == "model/0/W" else v)
    train.main(["--data", str(folder), "--epochs", "0", "--hidden", "4", "--load", str(bad)])
    assert "NaN or infinite weights" in capsys.readouterr().err


def test_load_problems_are_one_line_on_the_command_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _mnist_folder(folder)
    npy = tmp_path / "w.npy"
    np.save(npy, np.zeros(3))
    for path in (npy, tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            train.main(["--data", str(folder), "--epochs", "0", "--load", str(path)])
        assert len(str(exit_info.value).splitlines()) == 1
