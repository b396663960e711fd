#!/usr/bin/env python
"""Export a saved model folder (or Hub id) to ONNX with dynamic batch, height and width, checked against PyTorch with
onnxruntime in the same command (run with --help for the flags; needs `pip install -e ".[export]"`).

    python scripts/export_onnx.py --model_dir outputs/cpu-small --output outputs/cpu-small/model.onnx

Installed from a wheel, `perceiver-study-export-onnx` is the same command.
"""

import sys

from modeling_perceiver_study.onnx_export import export_main

if __name__ == "__main__":
    sys.exit(export_main())
