"""The patch covariance that a trained model's whitening was fitted on, read back from its buffers: the ZCA matrix is
U diag((lambda + eps)^-1/2) U^T, so its eigenvalues s give the covariance's eigenvalues lambda = s^-2 - eps. Writes
whitening_spectrum.json beside this file.

    python results/convfree-cpu/seed-convfree-white/whitening_spectrum.py outputs/seed-convfree-white
"""

import inspect
import json
import sys
from pathlib import Path

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.modeling_perceiver_study import PatchWhitening

EPS = inspect.signature(PatchWhitening.fit).parameters["eps"].default  # training.py fits with the default

model = PerceiverStudyForImageClassification.from_pretrained(sys.argv[1])
matrix = model.perceiver.patch_whitening.matrix.to(torch.float64)
scales = torch.linalg.eigvalsh(matrix)  # ascending; the smallest scale belongs to the largest eigenvalue
eigenvalues = (scales.pow(-2) - EPS).tolist()  # largest first; resolved only well above float32's rounding of eps
total = sum(eigenvalues)
record = {
    "model_dir": sys.argv[1],
    "eps": EPS,
    "covariance_eigenvalues": [round(value, 6) for value in eigenvalues],
    "total_variance": round(total, 4),
    "share_of_variance_first_1": round(eigenvalues[0] / total, 4),
    "share_of_variance_first_4": round(sum(eigenvalues[:4]) / total, 4),
    "whitened_variance_per_direction": [round(value / (value + EPS), 4) for value in eigenvalues],
}
path = Path(__file__).with_name("whitening_spectrum.json")
path.write_text(json.dumps(record, indent=2) + "\n")
print(json.dumps({key: value for key, value in record.items() if "eigen" not in key and "per_direction" not in key}))
print("eigenvalues:", [round(value, 4) for value in eigenvalues[:6]], "...", [f"{v:.1e}" for v in eigenvalues[-3:]])
