"""Export a saved model to ONNX, and check the graph against PyTorch in the same command.

    python scripts/export_onnx.py --model_dir outputs/cpu-small --output outputs/cpu-small/model.onnx

The graph takes `pixel_values` (normalized as the image processor does) and returns `logits`. Its batch axis is
dynamic, and so are height and width (multiples of the patch size): the Fourier position features are computed in
the graph for whatever grid the input has (a model with learned positions keeps its trained size). Before anything
is written, onnxruntime runs the graph on real images at two batch sizes and two image sizes and its logits must
match the PyTorch model's to `--tolerance` (1e-4). Writes `model.onnx` and, beside it, `<name>.json`: the checks, the
export time and, with `--benchmark`, onnxruntime's and PyTorch's images/s on this machine.
"""

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .files import write_json_atomic

DEFAULT_TOLERANCE = 1e-4
DEFAULT_OPSET = 18


class ExportError(Exception):
    """A problem that stops the export, stated for the user (what failed and what to do)."""


class LogitsOnly(torch.nn.Module):
    """The classifier as a graph from `pixel_values` to `logits`: no dataclass output, no optional arguments."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def require_export_packages() -> None:
    missing = [name for name in ("onnx", "onnxruntime", "onnxscript") if _missing(name)]
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}: pip install 'perceiver-study[export]' (nothing was written)"
        )


def _missing(module_name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module_name) is None


def load_classifier(model_dir):
    """The model and its image processor, loaded and checked as the demo loads them (`demo.load_classifier`)."""
    from .demo import DemoError
    from .demo import load_classifier as load_demo_classifier

    try:
        classifier = load_demo_classifier(model_dir)
    except DemoError as error:
        raise ExportError(str(error)) from error
    return classifier.model, classifier.processor


def export_graph(model, path, opset: int = DEFAULT_OPSET, dynamic_size: bool = True) -> float:
    """Write the ONNX graph of `model` to `path`; return the seconds the export took."""
    config = model.config
    patch = config.input_patch_size
    example = torch.zeros(2, config.num_channels, config.image_size, config.image_size)
    axes = {0: torch.export.Dim("batch")}
    if dynamic_size:  # sides stay multiples of the patch size, as the model requires
        axes[2] = patch * torch.export.Dim("height_in_patches")
        axes[3] = patch * torch.export.Dim("width_in_patches")
    started = time.perf_counter()
    try:
        with quiet_exporter():
            program = torch.onnx.export(
                LogitsOnly(model).eval(),
                (example,),
                input_names=["pixel_values"],
                output_names=["logits"],
                dynamic_shapes={"pixel_values": axes},
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001 - the exporter raises many types; the user needs the operator named
        problem = f"{type(error).__name__}: {_first_line(error)}"
        raise ExportError(f"the exporter failed at opset {opset}: {problem}") from error
    program.save(str(path))
    seconds = time.perf_counter() - started
    written = graph_opset(path)
    if written != opset:  # the exporter keeps its own opset when it cannot convert, with only a log line
        raise ExportError(
            f"the graph could not be converted to opset {opset}: the exporter left it at opset {written} (an operator "
            f"the model uses has no form at opset {opset}); pass --opset {written} or higher"
        )
    return seconds


def graph_opset(path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


@contextlib.contextmanager
def quiet_exporter():
    """The exporter's progress lines, warnings and log records are its own business: the command prints a summary."""
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        onnx_logger.setLevel(level)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or ["(no message)"])[0][:500]


def onnx_session(path):
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - e.g. an operator the runtime lacks at this opset
        raise ExportError(f"onnxruntime cannot load {path}: {_first_line(error)}") from error


def compare_logits(session, model, pixel_values: torch.Tensor) -> float:
    """Max absolute difference between onnxruntime's and PyTorch's logits for one batch."""
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits.numpy()
    try:
        (actual,) = session.run(["logits"], {"pixel_values": pixel_values.numpy()})
    except Exception as error:  # noqa: BLE001
        shape = tuple(pixel_values.shape)
        raise ExportError(f"onnxruntime failed on input of shape {shape}: {_first_line(error)}") from error
    return float(np.abs(actual - expected).max())


def reads_any_size(config) -> bool:
    """Fourier positions are computed for any H x W; learned ones exist for the trained grid only."""
    return getattr(config, "position_encoding_type", "fourier") != "learned"


def check_batches(model, processor, images) -> list[tuple[str, torch.Tensor]]:
    """The batches the graph is checked on: all real images, their first one alone, and (for the dynamic sides) the
    images at 1.5x and 0.5x the training size, rounded to the patch size."""
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    batches = [(f"{len(images)} images", pixels), ("1 image", pixels[:1])]
    if not reads_any_size(model.config):
        return batches
    patch, size = model.config.input_patch_size, model.config.image_size
    for factor in (1.5, 0.5):
        side = max(patch, int(round(size * factor / patch)) * patch)
        resized = processor(images=images, size={"height": side, "width": side}, return_tensors="pt")
        batches.append((f"{len(images)} images at {side} x {side}", resized["pixel_values"]))
    return batches


def images_per_second(run, pixel_values: torch.Tensor, repeats: int = 5) -> float:
    """Images/s of `run(pixel_values)`, the best of `repeats` timed calls after one warm-up call."""
    run(pixel_values)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(pixel_values)
        best = min(best, time.perf_counter() - started)
    return len(pixel_values) / best


def benchmark(session, model, pixel_values: torch.Tensor) -> dict:
    with torch.no_grad():
        eager = images_per_second(lambda batch: model(pixel_values=batch).logits, pixel_values)
    onnx = images_per_second(lambda batch: session.run(["logits"], {"pixel_values": batch.numpy()}), pixel_values)
    return {
        "batch_size": len(pixel_values),
        "torch_threads": torch.get_num_threads(),
        "pytorch_eager_images_per_second": eager,
        "onnxruntime_images_per_second": onnx,
        "onnxruntime_speedup": onnx / eager,
    }


def export_model(
    model_dir,
    output,
    images,
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
    benchmark_batch: int | None = None,
) -> dict:
    """Export, check against PyTorch on `images` (a list of PIL images), and write `output` and its record. A graph
    that fails the check is not left at `output`."""
    require_export_packages()
    model, processor = load_classifier(model_dir)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".export-") as work:
        candidate = Path(work) / output.name
        dynamic_size = reads_any_size(model.config)
        export_seconds = export_graph(model, candidate, opset, dynamic_size=dynamic_size)
        session = onnx_session(candidate)
        batches = check_batches(model, processor, images)
        checks = {name: compare_logits(session, model, batch) for name, batch in batches}
        failed = {name: difference for name, difference in checks.items() if not difference <= tolerance}
        if failed:
            raise ExportError(
                f"onnxruntime's logits differ from PyTorch's by more than {tolerance:g}: {failed} (nothing was written)"
            )
        record = {
            "model": str(model_dir),
            "output": str(output),
            "opset": opset,
            "onnx_bytes": candidate.stat().st_size,
            "export_seconds": export_seconds,
            "tolerance": tolerance,
            "max_abs_logit_difference": checks,
            "dynamic_axes": {
                "pixel_values": ["batch", "height", "width"] if dynamic_size else ["batch"],
                "logits": ["batch"],
            },
            "versions": _versions(),
        }
        if benchmark_batch:
            pixels = batches[0][1]
            repeated = pixels.repeat((benchmark_batch + len(pixels) - 1) // len(pixels), 1, 1, 1)[:benchmark_batch]
            record["benchmark"] = benchmark(session, model, repeated)
        os.replace(candidate, output)
    write_json_atomic(output.with_suffix(".json"), record)
    return record


def _versions() -> dict:
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def check_images(paths) -> list:
    """Real images to check the graph on: the given files, or the demo's example images shipped with the package."""
    from PIL import Image

    from .files import shipped_path

    if not paths:
        folder = shipped_path("assets/demo-examples")
        paths = sorted(folder.glob("*.png"))
        if not paths:
            raise ExportError(f"no example images in {folder}: pass --images")
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except OSError as error:
            raise ExportError(f"--images: {path} is not an image this program can read ({error})") from error
    return images


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def parse_export_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="A saved model folder or Hub id.")
    parser.add_argument("--output", default=None, help="Where to write the graph (default: <model_dir>/model.onnx).")
    parser.add_argument("--images", nargs="*", default=None, help="Images to check on (default: the demo examples).")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="Max logit difference allowed.")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version.")
    parser.add_argument(
        "--benchmark", type=int, default=None, metavar="BATCH", help="Also time onnxruntime and PyTorch at this batch."
    )
    return parser.parse_args(argv)


def export_main(argv=None) -> int:
    """`scripts/export_onnx.py` and the `perceiver-study-export-onnx` command."""
    args = parse_export_arguments(argv)
    output = args.output or str(Path(args.model_dir) / "model.onnx")
    try:
        record = export_model(
            args.model_dir, output, check_images(args.images), args.tolerance, args.opset, args.benchmark
        )
    except (ExportError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    worst = max(record["max_abs_logit_difference"].values())
    print(f"wrote {output} ({record['onnx_bytes']:,d} bytes, exported in {record['export_seconds']:.1f} s)")
    print(f"onnxruntime matches PyTorch: max logit difference {worst:.2e} <= {args.tolerance:g}")
    if "benchmark" in record:
        bench = record["benchmark"]
        print(
            f"batch {bench['batch_size']}: onnxruntime {bench['onnxruntime_images_per_second']:.0f} images/s, "
            f"PyTorch eager {bench['pytorch_eager_images_per_second']:.0f} images/s"
        )
    return 0
