"""The demo page: its prediction function against the model's own logits, any image in, the app served on loopback and
called through gradio_client, the staged Space run without the package, and (slow) the page in a real browser."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_perceiver_study import PerceiverStudyImageProcessor
from modeling_perceiver_study.demo import (
    DemoError,
    attention_figure,
    build_app,
    classify,
    demo_main,
    example_images,
    load_classifier,
    model_sized_image,
)
from modeling_perceiver_study.publish import check_staged_space_runs, push_main, stage_space
from tests.helpers import save_tiny_model_folder

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the app under test

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", Path(__file__).resolve().parent.parent / "test-artifacts"))


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "model"
    save_tiny_model_folder(folder, seed=4, input_patch_size=4, num_cross_attention_heads=2)
    return folder


@pytest.fixture(scope="module")
def classifier(model_folder):
    return load_classifier(model_folder)


def reference_logits(model_folder, image) -> torch.Tensor:
    """The model's own logits for a 32 x 32 RGB image, loaded and preprocessed independently of the demo."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_folder, trust_remote_code=True)
    with torch.no_grad():
        return model(**processor(images=image, return_tensors="pt")).logits[0]


def test_prediction_is_the_models_own_top_5(classifier, model_folder):
    image = Image.open(example_images()[0]).convert("RGB")
    prediction = classify(classifier, image)
    expected = reference_logits(model_folder, image)
    torch.testing.assert_close(prediction.logits, expected, rtol=1e-5, atol=1e-5)
    probabilities = expected.softmax(-1)
    top = torch.topk(probabilities, 5)
    assert list(prediction.probabilities) == [classifier.label_names[i] for i in top.indices.tolist()]
    assert list(prediction.probabilities.values()) == pytest.approx(top.values.tolist(), abs=1e-6)
    heads, latents = classifier.model.config.num_cross_attention_heads, classifier.model.config.num_latents
    assert prediction.cross_attention.shape == (heads, latents, 64)  # 8 x 8 tokens of 4 x 4 pixels
    assert attention_figure(classifier, prediction).size[0] > 200


def test_examples_ship_with_the_package_one_per_class():
    names = [Path(path).stem for path in example_images()]
    assert names == sorted(["airplane", "cat", "frog", "horse", "ship", "truck"])


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("L", (40, 30), 128),  # grayscale
        lambda: Image.new("RGBA", (32, 32), (255, 0, 0, 0)),  # transparent
        lambda: Image.new("P", (17, 90)),  # palette, tall
        lambda: Image.new("1", (5, 5)),  # bilevel, small
        lambda: Image.fromarray((np.arange(64 * 48) * 20).astype(np.uint16).reshape(64, 48)),  # 16-bit
        lambda: Image.fromarray(np.linspace(-3, 7, 50 * 50, dtype=np.float32).reshape(50, 50)),  # float
        lambda: Image.new("CMYK", (33, 33)),
        lambda: Image.new("RGB", (1, 1), (10, 200, 30)),  # one pixel
        lambda: Image.new("RGB", (6000, 4000), (200, 10, 30)),  # large
    ],
    ids=["L", "RGBA", "P", "1", "I;16", "F", "CMYK", "1x1", "6000x4000"],
)
def test_any_image_size_and_mode_is_classified(classifier, make):
    image = make()
    assert model_sized_image(image, 32, 3).size == (32, 32)
    prediction = classify(classifier, image)
    assert len(prediction.probabilities) == 5 and all(0 <= p <= 1 for p in prediction.probabilities.values())
    assert torch.isfinite(prediction.logits).all()


def test_a_non_square_image_is_cropped_to_its_centre_not_squashed():
    image = Image.new("RGB", (96, 32), (0, 0, 255))
    image.paste((255, 0, 0), (32, 0, 64, 32))  # a red centre between blue sides
    assert np.asarray(model_sized_image(image, 32, 3))[..., 0].min() == 255


def test_a_one_channel_model_reads_one_channel(tmp_path):
    folder = tmp_path / "gray"
    model = save_tiny_model_folder(folder, num_channels=1)
    processor = PerceiverStudyImageProcessor(image_mean=[0.5], image_std=[0.25], do_convert_rgb=False)
    processor.save_pretrained(folder)
    prediction = classify(load_classifier(folder), Image.new("RGB", (50, 40), (255, 255, 255)))
    with torch.no_grad():
        expected = model(pixel_values=torch.full((1, 1, 32, 32), (1.0 - 0.5) / 0.25)).logits[0]
    torch.testing.assert_close(prediction.logits, expected, rtol=1e-5, atol=1e-5)


def test_a_folder_that_is_not_a_model_is_refused_by_name(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DemoError, match="empty.*no config.json"):
        load_classifier(tmp_path / "empty")
    other = tmp_path / "vit"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(DemoError, match="'vit' model"):
        load_classifier(other)
    assert demo_main(["--model_dir", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_app(classifier):
    app = build_app(classifier)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def test_the_served_app_answers_through_gradio_client(served_app, classifier):
    from gradio_client import Client, handle_file

    example = example_images()[1]
    label, drawing = Client(served_app, verbose=False).predict(handle_file(example), api_name="/predict")
    expected = classify(classifier, Image.open(example))
    assert label["label"] == next(iter(expected.probabilities))
    served = {item["label"]: item["confidence"] for item in label["confidences"]}
    assert served == pytest.approx(expected.probabilities, abs=1e-6)
    assert Image.open(drawing).size == attention_figure(classifier, expected).size


def test_pushing_with_a_space_stages_a_space_that_runs_without_the_package(model_folder, tmp_path, capsys):
    space = tmp_path / "space"
    staged = {item.path_in_repo for item in stage_space(space, "org/model")}
    assert {"app.py", "requirements.txt", "README.md", "perceiver_study_demo/demo.py"} <= staged
    assert "sdk: gradio" in (space / "README.md").read_text() and "org/model" in (space / "app.py").read_text()
    expected = classify(load_classifier(model_folder), Image.open(example_images()[0]))
    assert check_staged_space_runs(space, model_folder) == next(iter(expected.probabilities))
    # The Space's app.py as the Space runs it: only its own files on the path, the model from PERCEIVER_STUDY_MODEL.
    code = (
        "import sys; sys.modules['modeling_perceiver_study'] = None; sys.path.insert(0, sys.argv[1]); import app; "
        "import gradio; assert isinstance(app.demo, gradio.Blocks); print('ok')"
    )
    env = {**os.environ, "PERCEIVER_STUDY_MODEL": str(model_folder), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    command = [sys.executable, "-c", code, str(space)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=space)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]

    with pytest.raises(Exception, match="not empty"):
        stage_space(space, "org/model")
    assert push_main(["--model_dir", str(model_folder), "--repo_id", "org/m", "--space_id", "bad id", "--dry_run"]) == 2
    assert "bad id" in capsys.readouterr().err


def chrome_paths():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.mark.slow
@pytest.mark.skipif(chrome_paths() is None, reason="needs Debian's chromium and chromium-driver (installed by .ci/run)")
def test_the_page_in_a_real_browser_classifies_an_uploaded_image(served_app, classifier):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path = chrome_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1100"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    example = example_images()[4]  # ship
    expected = next(iter(classify(classifier, Image.open(example)).probabilities))
    try:
        browser.get(served_app)
        upload = WebDriverWait(browser, 60).until(lambda b: b.find_element(By.CSS_SELECTOR, "input[type=file]"))
        upload.send_keys(example)
        WebDriverWait(browser, 60).until(
            lambda b: any(e.is_displayed() for e in b.find_elements(By.CSS_SELECTOR, "img[src*='/file='], img"))
        )
        submit = next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Submit")
        submit.click()
        heading = WebDriverWait(browser, 120).until(
            lambda b: next(
                (e for e in b.find_elements(By.CSS_SELECTOR, "h2.output-class, [data-testid='label-output-value']")
                 if e.text.strip()), None,
            )
        )  # fmt: skip
        assert heading.text.strip() == expected
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        time.sleep(1)  # the attention drawing arrives with the label; let it paint
        browser.save_screenshot(str(ARTIFACTS / "demo-page.png"))
    finally:
        browser.quit()
