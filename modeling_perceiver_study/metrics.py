"""Accuracy through `evaluate`, online and offline.

Online, `evaluate.load("accuracy")` fetches the Hub's metric module on first use. Offline (no network, or
`HF_HUB_OFFLINE=1` / `HF_EVALUATE_OFFLINE=1`), the same metric comes from `LocalAccuracy`, an `evaluate.Metric`
defined here with evaluate's own API: same name, inputs and output (`{"accuracy": float}`).
"""

import logging
import os

import datasets
import evaluate
import numpy as np

logger = logging.getLogger(__name__)


class LocalAccuracy(evaluate.Metric):
    """Accuracy = correct predictions / all predictions, optionally weighted per sample."""

    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description="Proportion of predictions equal to their reference label.",
            citation="",
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, sample_weight=None):
        correct = np.asarray(predictions) == np.asarray(references)
        weights = np.ones(len(correct)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        return {"accuracy": float((correct * weights).sum() / weights.sum())}


def is_offline() -> bool:
    return any(
        os.environ.get(name, "0").upper() in ("1", "ON", "YES", "TRUE")
        for name in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE")
    )


def load_accuracy() -> evaluate.EvaluationModule:
    if not is_offline():
        try:
            return evaluate.load("accuracy")
        except Exception as error:  # noqa: BLE001 - any failure to fetch means: use the local definition
            logger.warning("evaluate.load('accuracy') failed (%s); using the local accuracy metric", error)
    return LocalAccuracy()


def build_compute_metrics(num_labels: int):
    """`compute_metrics` for Trainer: accuracy, plus the number of samples scored (to prove none is duplicated)."""
    accuracy = load_accuracy()

    def compute_metrics(eval_prediction):
        logits, labels = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        predictions = np.argmax(logits, axis=-1)
        result = accuracy.compute(predictions=predictions, references=labels)
        result["num_samples"] = int(len(labels))
        return result

    return compute_metrics
