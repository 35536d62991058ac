"""Temperature scaling: the fit recovers a known temperature; ECE against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from renal_nnunet.classification.calibration import apply_temperature, expected_calibration_error, fit_temperature


def _overconfident(temperature: float, n: int = 4000, seed: int = 0):
    """Softmax outputs of logits z whose labels are drawn from softmax(z / temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 3))
    true = apply_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), temperature)
    labels = np.array([rng.choice(3, p=p) for p in true])
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), labels


def test_fit_recovers_the_temperature_that_generated_the_labels():
    probabilities, labels = _overconfident(2.5)
    assert fit_temperature(probabilities, labels) == pytest.approx(2.5, rel=0.1)
    scaled = apply_temperature(probabilities, fit_temperature(probabilities, labels))
    assert expected_calibration_error(scaled, labels) < 0.5 * expected_calibration_error(probabilities, labels)


def test_ece_matches_a_direct_computation_over_bins():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(3), 500)
    labels = rng.integers(0, 3, 500)
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    expected = 0.0
    for low in np.arange(10) / 10:
        inside = (confidence >= low) & ((confidence < low + 0.1) | (low == 0.9))
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected)
