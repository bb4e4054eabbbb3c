"""``tools/deployment/onnx_demo.py``: an image file through the config's pre-processing and an
exported graph gives PyTorch's ``inference_detector`` detections on the original image."""
import cv2
import numpy as np
import pytest
import torch
from mmdet.apis import inference_detector, init_detector

from mmvidt.deployment import DeployableDetector
from mmvidt.deployment.onnx_export import export_onnx
from mmvidt.deployment.onnx_inference import OnnxDetector
from tool_utils import REPO_ROOT, python_tool, run_tool

VIDT = str(REPO_ROOT / 'configs/vidt/vidt_swin-pico_1xb4-40e_shapes.py')
#: the test pipeline resizes 300 x 200 (w x h) to 160 x 107 (keep ratio, longer side 160)
IMAGE_SIZE, INPUT_SIZE = (200, 300), (107, 160)


def draw_image(path, height: int, width: int, seed: int = 0) -> None:
    """A noisy background with a filled circle and square (BGR PNG)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    cv2.circle(image, (width // 3, height // 2), height // 5, (40, 200, 220), -1)
    cv2.rectangle(image, (width // 2, height // 4), (width * 3 // 4, height * 3 // 4),
                  (200, 60, 30), -1)
    cv2.imwrite(str(path), image)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A seeded random-weight pico ViDT, its PyTorch ``inference_detector`` result on an image
    file, and a static graph exported at the size the test pipeline gives for that image."""
    root = tmp_path_factory.mktemp('onnx_demo')
    image = root / 'shapes.png'
    draw_image(image, *IMAGE_SIZE)
    torch.manual_seed(0)
    model = init_detector(VIDT, None, device='cpu')
    expected = inference_detector(model, str(image))
    graph = root / 'vidt.onnx'
    images = torch.randn(1, 3, *INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    export_onnx(DeployableDetector(model), images, str(graph))
    return dict(root=root, image=image, graph=graph, expected=expected)


def test_detections_equal_inference_detector(exported):
    sample = OnnxDetector(VIDT, str(exported['graph']))(str(exported['image']))
    expected = exported['expected']
    assert sample.metainfo['img_shape'] == INPUT_SIZE
    assert sample.metainfo['ori_shape'] == IMAGE_SIZE
    got, want = sample.pred_instances, expected.pred_instances
    assert len(got) == len(want) == 50  # max_per_img; every logit column is a shapes class
    for threshold in (0., 0.3):
        keep_got, keep_want = got.scores >= threshold, want.scores >= threshold
        assert torch.equal(keep_got, keep_want)
        assert torch.equal(got.labels[keep_got], want.labels[keep_want])
        torch.testing.assert_close(got.scores[keep_got], want.scores[keep_want], atol=1e-4,
                                   rtol=0)
        torch.testing.assert_close(got.bboxes[keep_got], want.bboxes[keep_want], atol=1e-3,
                                   rtol=0)
    # the boxes are on the original image (rescaled), not on the 107 x 160 network input
    assert float(want.bboxes[:, 2].max()) > INPUT_SIZE[1]


def test_demo_writes_the_drawing(exported):
    out_dir = exported['root'] / 'outputs'
    output = run_tool(python_tool('deployment/onnx_demo.py', exported['image'], VIDT,
                                  exported['graph'], '--out-dir', out_dir,
                                  '--pred-score-thr', '0'), cwd=REPO_ROOT)
    drawing = cv2.imread(str(out_dir / 'shapes.png'))
    assert f'saved {out_dir / "shapes.png"}' in output
    assert drawing.shape == (*IMAGE_SIZE, 3)
    # boxes drawn over the image: the drawing is not the input
    assert (drawing != cv2.imread(str(exported['image']))).any()


def test_a_static_graph_of_another_size_is_refused(exported, tmp_path):
    square = tmp_path / 'square.png'
    draw_image(square, 240, 240)  # -> 160 x 160, the graph takes 107 x 160
    with pytest.raises(ValueError) as error:
        OnnxDetector(VIDT, str(exported['graph']))(str(square))
    message = str(error.value)
    assert 'static graph of input 1x3x107x160' in message
    assert 'gives 1x3x160x160' in message and '--shape 160 160' in message
    assert '\n' not in message
