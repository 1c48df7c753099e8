"""``python -m nnjit train`` end to end on small data, the IDX reader on good and bad files,
and nnjit.save / nnjit.load round trips and refusals."""
import ast
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import nnjit
from conftest import flat_arrays
from nnjit import _compile_helper, idx, train
from nnjit.serialize import StateFileError

pytest.importorskip("sklearn")


def _run(capsys, *argv):
    train.main(list(argv))
    return capsys.readouterr().out


def _mnist_folder(folder, n_train=96, n_test=40, side=6, gz=False, classes=4):
    """A small MNIST-shaped data set: class k lights up row k of the image."""
    rng = np.random.default_rng(0)

    def images_labels(n):
        labels = rng.integers(0, classes, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
        images[np.arange(n), labels] = 255
        return images, labels

    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = images_labels(n)
        idx.write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"), images)
        idx.write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"), labels)
    return str(folder)


def test_digits_end_to_end_with_plot_and_save(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    weights, plot = tmp_path / "w.npz", tmp_path / "curves.png"
    out = _run(capsys, "--epochs", "4", "--hidden", "32", "--save", str(weights),
               "--plot", str(plot))
    assert "scikit-learn's handwritten digits" in out and "1438 training and 359 validation" in out
    for epoch in (1, 2, 3, 4):
        assert f"epoch {epoch}/4  train loss" in out
    assert "samples/s" in out and "final validation accuracy" in out
    # a first run's compile is announced before it starts, not only after
    assert out.index("compiling kernels") < out.index("kernels ready in") < out.index("epoch 1/4")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    accuracy = float(out.split("final validation accuracy: ")[1].split()[0])
    assert accuracy > 0.85
    # reload: evaluating the saved model gives the same accuracy, and training goes on
    out = _run(capsys, "--epochs", "0", "--hidden", "32", "--load", str(weights))
    assert float(out.split("final validation accuracy: ")[1].split()[0]) == accuracy
    out = _run(capsys, "--epochs", "1", "--hidden", "32", "--load", str(weights))
    assert "epoch 1/1" in out


def test_same_seed_same_losses_other_seed_other_losses():
    def history(seed, backend="numba"):
        args = train.parser().parse_args(["--epochs", "2", "--hidden", "16", "--dropout", "0.2",
                                          "--batchnorm", "--seed", str(seed)])
        with nnjit.backend(backend):
            return train.train(args, out=io.StringIO())
    first, again, other = history(1), history(1), history(2)
    assert first == again
    assert first["train_loss"] != other["train_loss"]
    numpy_path = history(1, "numpy")
    np.testing.assert_allclose(numpy_path["train_loss"], first["train_loss"], rtol=1e-4)


@pytest.mark.parametrize("options", [
    ["--activation", "elu", "--optimizer", "sgd_momentum", "--lr", "0.05"],
    ["--activation", "softplus", "--batchnorm", "--dtype", "float64", "--backend", "numpy"],
    ["--activation", "leaky_relu", "--dropout", "0.3", "--threads", "1", "--batch-size", "7"],
])
def test_options(tmp_path, capsys, options):
    out = _run(capsys, "--data", _mnist_folder(tmp_path), "--epochs", "2", "--hidden", "12", "8",
               *options)
    assert "MNIST IDX files" in out and "96 training and 40 validation samples, 4 classes" in out
    assert "final validation accuracy" in out


def test_mnist_gz_files_train(tmp_path, capsys):
    out = _run(capsys, "--data", _mnist_folder(tmp_path, gz=True), "--epochs", "8",
               "--hidden", "16", "--lr", "0.01")
    assert float(out.split("final validation accuracy: ")[1].split()[0]) > 0.9


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    stream = Terminal()
    progress = train.Progress(stream, epochs=2, batches=4)
    progress.batch(1, 2, 0.5)
    progress.epoch("epoch 1/2 done")
    assert "\repoch 1/2 [############............] 2/4 loss 0.5000" in stream.getvalue()
    assert stream.getvalue().endswith("\r\033[Kepoch 1/2 done\n")
    plain = io.StringIO()
    train.Progress(plain, 2, 4).batch(1, 2, 0.5)
    assert plain.getvalue() == ""


# ---------------------------------------------------------------- IDX reader
def test_idx_round_trip_all_types(tmp_path):
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        for name in ("a.idx", "a.idx.gz"):
            idx.write_idx(tmp_path / name, array)
            back = idx.read_idx(tmp_path / name)
            assert back.dtype == array.dtype and np.array_equal(back, array)


def _bad(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", "too short for an IDX header"),
    (b"PK\x03\x04rest", "not an IDX file"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "truncated: shape (5,) needs 5 bytes of data, the file has 3"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x02abcd", "2 bytes after the data"),
])
def test_idx_corrupt_files_are_named(tmp_path, data, message):
    path = _bad(tmp_path, "x-labels-idx1-ubyte", data)
    with pytest.raises(idx.IDXError, match=str(path).replace("\\", "\\\\")) as error:
        idx.read_idx(path)
    assert message in str(error.value)


def test_idx_corrupt_gzip(tmp_path):
    good = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03abc")
    for data in (b"not gzip at all", good[:-6]):
        path = _bad(tmp_path, "a.gz", data)
        with pytest.raises(idx.IDXError, match="a.gz: cannot be decompressed"):
            idx.read_idx(path)


def test_mnist_folder_problems_reach_the_command_line(tmp_path):
    folder = _mnist_folder(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    idx.write_idx(labels, np.zeros(39, np.uint8))  # one label short
    with pytest.raises(SystemExit, match="39 labels for the 40 images"):
        train.main(["--data", folder, "--epochs", "1"])
    os.remove(labels)
    with pytest.raises(SystemExit, match="no t10k-labels-idx1-ubyte file"):
        train.main(["--data", folder, "--epochs", "1"])
    idx.write_idx(labels, np.zeros((40, 2), np.uint8))
    with pytest.raises(SystemExit, match=r"expected uint8 labels \(count,\)"):
        train.main(["--data", folder, "--epochs", "1"])


def test_command_line_refusals(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):  # argparse
        train.main(["--epochs", "-1"])
    assert "--epochs: must be 0 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no folder"):
        train.main(["--save", str(tmp_path / "missing" / "w.npz")])
    with pytest.raises(SystemExit):  # argparse: dropout outside [0, 1)
        train.main(["--dropout", "1.5"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(SystemExit, match=r"pip install 'nnjit\[plot\]'"):
        train.main(["--plot", str(tmp_path / "p.png")])


def test_module_command_and_console_script():
    done = subprocess.run([sys.executable, "-m", "nnjit", "train", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "--batchnorm" in done.stdout
    script = shutil.which("nnjit", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the nnjit console script is not installed in this environment")
    done = subprocess.run([script, "train", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--batchnorm" in done.stdout


@pytest.mark.parametrize("n, batch, sizes", [(1437, 1024, [1024, 413]), (2048, 1024, [1024]),
                                               (100, 1024, [100]), (1024, 1024, [1024]), (0, 64, [])])
def test_batch_sizes(n, batch, sizes):
    assert train.batch_sizes(n, batch) == sizes


_WATCH_LATE_COMPILES = """
import sys
from numba.core import event
from nnjit import train

late, ready = [], []


class Late(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        if ready:
            late.append(ev.data["dispatcher"].py_func.__qualname__)


compile_kernels = train._compile


def compile_then_watch(*args, **kwargs):
    compile_kernels(*args, **kwargs)
    ready.append(True)


train._compile = compile_then_watch
event.register("numba:compile", Late())
train.main(sys.argv[1:])
print("compiled after 'kernels ready':", late)
"""


def test_nothing_compiles_after_kernels_ready(tmp_path):
    """1438 training rows in batches of 1024: the short last batch (414 rows) takes serial
    kernel variants the full ones do not; they used to compile inside the first epoch, whose
    time and samples/s then included them."""
    env = dict(os.environ, NNJIT_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _WATCH_LATE_COMPILES, "--batch-size", "1024",
                           "--epochs", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "compiled after 'kernels ready': []" in done.stdout, done.stdout


_WATCH_HELPER = """
import sys
from nnjit import _compile_helper, train
from nnjit.kernels import _cache

if sys.argv[1] == "no-interpreter":
    _compile_helper.sys.executable = "/nonexistent/python"
finish = _compile_helper.ForwardCompiler.finish
finished = []


def watched_finish(self, wait):
    status = finish(self, wait)
    finished.append((wait, status))
    return status


_compile_helper.ForwardCompiler.finish = watched_finish
train.main(["--epochs", "2", "--batch-size", "1024"])
print("helper:", finished)
print("entries saved by this process:", _cache.STATS["saves"])
"""


def _train_watching_the_helper(cache, mode="normal", cache_on=True):
    env = dict(os.environ, NNJIT_CACHE_DIR=str(cache), NNJIT_CACHE="1" if cache_on else "0")
    done = subprocess.run([sys.executable, "-c", _WATCH_HELPER, mode], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    epochs = [re.sub(r"\s+[\d,]+ samples/s.*", "", line)
              for line in lines if line.startswith("epoch")]
    saved_here = int(lines[-1].split()[-1])
    return ast.literal_eval(lines[-2].split(":", 1)[1].strip()), epochs, saved_here


def test_first_run_compiles_forward_kernels_in_a_helper_process(tmp_path):
    """Cold: the helper runs to the end (status 0) and the process waits for it; warm: nothing
    compiled here, so the helper is stopped at once. Without the cache (nothing to share),
    where it cannot be written, and without an interpreter to start it, there is none. The
    losses are the same in all five."""
    cold, epochs, saved_here = _train_watching_the_helper(tmp_path / "cache")
    assert cold == [(True, 0)]
    saved = sum(name.endswith(".nbc") for _, _, names in os.walk(tmp_path / "cache")
                for name in names)
    assert 0 < saved_here < saved  # the helper saved the rest
    warm, warm_epochs, saved_warm = _train_watching_the_helper(tmp_path / "cache")
    assert len(warm) == 1 and warm[0][0] is False and saved_warm == 0
    uncached, uncached_epochs, _ = _train_watching_the_helper(tmp_path / "off", cache_on=False)
    assert uncached == []
    failed, failed_epochs, _ = _train_watching_the_helper(tmp_path / "other", "no-interpreter")
    assert failed == []
    (tmp_path / "a file").write_text("")  # a cache folder that cannot be made, even by root
    unwritable, unwritable_epochs, _ = _train_watching_the_helper(tmp_path / "a file" / "cache")
    assert unwritable == []
    assert len(epochs) == 2
    assert epochs == warm_epochs == uncached_epochs == failed_epochs == unwritable_epochs


@pytest.mark.parametrize("recipe, shape", [
    ({"model": "cnn", "side": 8, "n_classes": 3, "channels": [2, 3], "activation": "elu",
      "dropout": 0.5, "dtype": "float64"}, (2, 1, 8, 8)),
    ({"model": "mlp", "n_in": 5, "n_classes": 3, "hidden": [4, 4], "activation": "softplus",
      "batchnorm": True, "dropout": 0.2, "dtype": "float32", "sync": False}, (2, 5))])
def test_the_helper_rebuilds_the_model_from_its_recipe(tmp_path, recipe, shape):
    """What the helper process runs, here in-process: the model from the JSON recipe, forward
    on each input of the .npz in training and then evaluation mode."""
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    x = np.random.default_rng(0).standard_normal(shape).astype(recipe["dtype"])
    np.savez(tmp_path / "inputs.npz", train_0=x, train_1=x[:1], eval_0=x)
    model = train.build(recipe)
    assert model.forward(x).shape == (len(x), recipe["n_classes"])
    _compile_helper.main(str(tmp_path))


# ---------------------------------------------------------------- save / load
def _model(hidden=8, dtype=np.float32):
    return nnjit.Sequential(nnjit.Linear(5, hidden, dtype=dtype), nnjit.BatchNormalization(0.5),
                            nnjit.ChannelwiseScaling(hidden, dtype=dtype), nnjit.ReLU(),
                            nnjit.Sequential(nnjit.Linear(hidden, 3, dtype=dtype)),
                            nnjit.LogSoftMax())


def _trained(model, steps=3):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)).astype(model[0].dtype), rng.integers(0, 3, 16)
    criterion, state = nnjit.ClassNLLCriterion(log_input=True), {}
    config = {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    for _ in range(steps):
        model.zeroGradParameters()
        out = model.forward(x)
        criterion.forward(out, y)
        model.backward(x, criterion.backward(out, y))
        nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
    return x, state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip(tmp_path, dtype):
    model = _trained_model = _model(dtype=dtype)
    x, state = _trained(model)
    path = tmp_path / "m.npz"
    nnjit.save(path, model, state)
    fresh = _model(dtype=dtype)  # other random weights, no batch-norm statistics yet
    parameters = fresh.getParameters()
    loaded_state = nnjit.load(path, fresh)
    model.evaluate(), fresh.evaluate()
    np.testing.assert_array_equal(fresh.forward(x), model.forward(x))
    assert fresh.getParameters() == parameters and fresh.getParameters()[0][0] is parameters[0][0]
    assert loaded_state["t"] == state["t"] == 3
    for slot in ("m", "v"):
        assert set(loaded_state[slot]) == set(state[slot])
        for index in state[slot]:
            np.testing.assert_array_equal(loaded_state[slot][index], state[slot][index])
    with np.load(path, allow_pickle=False) as data:
        assert "model/1/moving_mean" in data.files and "model/4.0/W" in data.files


def test_load_refuses_mismatches_and_changes_nothing(tmp_path):
    model = _model()
    _, state = _trained(model)
    path = tmp_path / "m.npz"
    nnjit.save(path, model, state)
    for other, message in [(_model(hidden=9), "model/0/W: the file has float32 (8, 5), the model float32 (9, 5)"),
                           (_model(dtype=np.float64), "the file has float32 (8, 5), the model float64 (8, 5)"),
                           (nnjit.Sequential(nnjit.Linear(5, 8)), "model/1/moving_mean is in the file but not in the model")]:
        before = [a.copy() for a in flat_arrays(other.getParameters())]
        with pytest.raises(StateFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
            nnjit.load(path, other)
        after = list(flat_arrays(other.getParameters()))
        assert all(np.array_equal(a, b) for a, b in zip(before, after))
    bigger = nnjit.Sequential(*_model().modules, nnjit.Linear(3, 3))
    with pytest.raises(StateFileError, match="model/6/W is missing from the file"):
        nnjit.load(path, bigger)


def test_load_refuses_files_that_are_not_nnjit_state(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(StateFileError, match="not a readable .npz file"):
        nnjit.load(garbage, _model())
    plain = tmp_path / "plain.npz"
    np.savez(plain, W=np.zeros(3))
    with pytest.raises(StateFileError, match="not an nnjit state file"):
        nnjit.load(plain, _model())
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array("nnjit-1"), evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(StateFileError, match="evil: holds objects"):
        nnjit.load(pickled, _model())
    with pytest.raises(TypeError, match="expected a Module"):
        nnjit.save(tmp_path / "x.npz", [np.zeros(2)])


def test_digits_read_without_importing_sklearn_equal_load_digits():
    from sklearn.datasets import load_digits
    pixels, labels = train._digits()
    digits = load_digits()
    np.testing.assert_array_equal(pixels, digits.data)
    np.testing.assert_array_equal(labels, digits.target)
    assert labels.dtype == np.int64


def test_digits_fall_back_to_load_digits_when_the_csv_moved(monkeypatch, tmp_path):
    real_find_spec = train.importlib.util.find_spec

    def moved(name, *args):
        spec = real_find_spec(name, *args)
        if name == "sklearn":
            spec = train.importlib.util.spec_from_file_location("sklearn", tmp_path / "__init__.py")
        return spec
    monkeypatch.setattr(train.importlib.util, "find_spec", moved)
    pixels, labels = train._digits()
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)


def test_cnn_on_the_digits_with_default_options(capsys):
    """python -m nnjit train --model cnn: two Conv2d-MaxPool2d stages; at least 0.985
    validation accuracy on the digits with the default options."""
    history = train.train(train.parser().parse_args(["--model", "cnn"]), out=io.StringIO())
    assert history["val_accuracy"][-1] >= 0.985


def test_cnn_on_mnist_shaped_files_and_refusals(tmp_path):
    folder = _mnist_folder(tmp_path, side=8)
    history = train.train(train.parser().parse_args(
        ["--model", "cnn", "--data", folder, "--epochs", "3", "--channels", "4", "8"]),
        out=io.StringIO())
    assert len(history["val_accuracy"]) == 3
    with pytest.raises(SystemExit, match="--batchnorm applies to the MLP"):
        train.main(["--model", "cnn", "--batchnorm", "--data", folder, "--epochs", "1"])
    odd = tmp_path / "odd"
    odd.mkdir()
    for prefix, n in (("train", 20), ("t10k", 10)):
        idx.write_idx(odd / f"{prefix}-images-idx3-ubyte", np.zeros((n, 3, 5), np.uint8))
        idx.write_idx(odd / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 2)
    with pytest.raises(SystemExit, match="needs square images"):
        train.main(["--model", "cnn", "--data", str(odd), "--epochs", "1"])
