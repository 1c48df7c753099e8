"""Train a small MLP with nnjit on a synthetic 3-class problem (no download needed)."""
import time

import numpy as np

import nnjit


def make_blobs(n, centers, rng):
    """Samples from Gaussian clouds around ``centers`` (one per class)."""
    labels = rng.integers(0, len(centers), n)
    noise = rng.standard_normal((n, centers.shape[1])) * 2
    return (centers[labels] + noise).astype(np.float32), labels


def main():
    rng = np.random.default_rng(0)
    np.random.seed(0)  # parameter init and dropout masks
    centers = rng.standard_normal((3, 20))  # three overlapping classes in 20 dimensions
    x_train, y_train = make_blobs(6000, centers, rng)
    x_val, y_val = make_blobs(1000, centers, rng)

    model = nnjit.Sequential(
        nnjit.Linear(20, 64), nnjit.BatchNormalization(alpha=0.9), nnjit.LeakyReLU(),
        nnjit.Dropout(0.2), nnjit.Linear(64, 3), nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    config = {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    state = {}
    print(model)

    start = time.perf_counter()
    nnjit.warmup(model, x_train, criterion, y_train)
    print(f"compiled kernels in {time.perf_counter() - start:.1f} s")
    for epoch in range(5):
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(x_train))
        for batch in np.array_split(order, len(order) // 128):
            model.zeroGradParameters()
            out = model.forward(x_train[batch])
            loss = criterion.forward(out, y_train[batch])
            model.backward(x_train[batch], criterion.backward(out, y_train[batch]))
            nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
        model.evaluate()
        accuracy = (model.forward(x_val).argmax(axis=1) == y_val).mean()
        print(f"epoch {epoch + 1}: train loss {loss:.4f}  validation accuracy {accuracy:.3f}  "
              f"({time.perf_counter() - start:.2f} s)")


if __name__ == "__main__":
    main()
