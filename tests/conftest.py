import io

import numpy as np
import pytest
from PIL import Image

SYNTHETIC_LABELS = ["red", "green", "blue", "yellow"]
COLORS = [(220, 30, 30), (30, 200, 40), (40, 40, 230), (230, 220, 30)]


def synthetic_image(label: int, index: int, size: int = 32) -> Image.Image:
    """A noisy image whose dominant colour is its class, with a class-specific stripe: easy to learn."""
    rng = np.random.default_rng(1000 * label + index)
    array = rng.normal(0, 25, (size, size, 3)) + np.array(COLORS[label])
    array[:, (label * 8) % size : (label * 8) % size + 4] = 255
    return Image.fromarray(np.clip(array, 0, 255).astype("uint8"))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_image_parquet(
    path, per_class=24, labels=SYNTHETIC_LABELS, image_column="img", label_column="label", corrupt_rows=(), size=32
):
    """A parquet file with the schema of `uoft-cs/cifar10` (Image + ClassLabel columns)."""
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    rows = [(label, index) for index in range(per_class) for label in range(len(labels))]
    images = [{"bytes": png_bytes(synthetic_image(label, index, size)), "path": None} for label, index in rows]
    for row in corrupt_rows:
        images[row] = {"bytes": b"these bytes are not an image", "path": None}
    features = Features({image_column: ImageFeature(), label_column: ClassLabel(names=list(labels))})
    dataset = Dataset.from_dict({image_column: images, label_column: [label for label, _ in rows]}, features=features)
    dataset.to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def synthetic_parquet(tmp_path_factory):
    return write_image_parquet(tmp_path_factory.mktemp("data") / "train.parquet")
