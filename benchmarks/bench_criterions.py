"""Forward and backward of the criterions with integer labels (MSE: a dense target)."""
import numpy as np

import nnjit

from .common import (BACKENDS, DTYPES, SHAPES, Benchmark, built_once, random_batch,
                     random_labels, select_backend)

CRITERIONS = ["ClassNLLCriterion", "ClassNLLCriterion(log_input=True)", "CrossEntropyCriterion",
              "MSECriterion"]
PROBABILITY_EPS = 1e-15


def _inputs(criterion, shape, dtype):
    """(input, target) in the form each criterion takes."""
    scores = random_batch(shape, dtype)
    log_probabilities = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    labels = random_labels(shape[0], shape[1])
    return {
        "ClassNLLCriterion": (np.exp(log_probabilities), labels),
        "ClassNLLCriterion(log_input=True)": (log_probabilities, labels),
        "CrossEntropyCriterion": (scores, labels),
        "MSECriterion": (scores, random_batch(shape, dtype, seed=2)),
    }[criterion]


def _nnjit_criterion(criterion):
    return {
        "ClassNLLCriterion": nnjit.ClassNLLCriterion,
        "ClassNLLCriterion(log_input=True)": lambda: nnjit.ClassNLLCriterion(log_input=True),
        "CrossEntropyCriterion": nnjit.CrossEntropyCriterion,
        "MSECriterion": nnjit.MSECriterion,
    }[criterion]()


def _torch_loss(torch, criterion):
    F = torch.nn.functional
    return {
        "ClassNLLCriterion": lambda p, t: F.nll_loss(
            torch.log(p.clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)), t),
        "ClassNLLCriterion(log_input=True)": F.nll_loss,
        "CrossEntropyCriterion": F.cross_entropy,
        "MSECriterion": lambda x, t: F.mse_loss(x, t, reduction="sum") / x.shape[0],
    }[criterion]


class Criterions(Benchmark):
    params = [CRITERIONS, SHAPES, DTYPES, BACKENDS]
    param_names = ["criterion", "shape", "dtype", "backend"]

    @built_once
    def setup(self, criterion, shape, dtype, backend):
        torch = select_backend(backend)
        x, target = _inputs(criterion, shape, dtype)
        if torch is None:
            loss = _nnjit_criterion(criterion)
            self.forward = lambda: loss.forward(x, target)
            self.backward = lambda: loss.backward(x, target)
        else:
            tx, tt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(target)
            loss_fn = _torch_loss(torch, criterion)
            self.forward = lambda: loss_fn(tx, tt)
            recorded = loss_fn(tx, tt)
            self.backward = lambda: recorded.backward(retain_graph=True)
        self.forward()
        self.backward()

    def time_forward(self, *params):
        self.forward()

    def time_backward(self, *params):
        self.backward()
