"""The pinned CenterFace graph and the input blob it takes, for the detector and the INT8 builder.

Its own module so that detect/faces.py (which runs the graph) and detect/quantize.py (which
rebuilds the INT8 graph from it, and calibrates on network inputs) both depend on it instead of
on each other.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._errors import ModelError
from .._models import CENTERFACE, model_path

# CenterFace predicts on a stride-4 grid and its backbone downsamples by 32, so inputs are padded
# (never stretched) to a multiple of 32.
_STRIDE = 32


@lru_cache(maxsize=1)
def fp32_model():  # type: ignore[no-untyped-def]
    """The pinned CenterFace graph, made shape-dynamic (its batch, height and width symbolic)."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ModelError(f"onnx is required: {exc}") from exc
    model = onnx.load(str(model_path(CENTERFACE)))
    graph = model.graph
    # The shipped graph is fixed at 10x3x32x32; make batch, height and width symbolic.
    dims = {"input.1": ["B", 3, "H", "W"], "537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"],
            "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]}
    for value in list(graph.input) + list(graph.output):
        if value.name in dims:
            for dim, new in zip(value.type.tensor_type.shape.dim, dims[value.name]):
                if isinstance(new, str):
                    dim.dim_param = new
                else:
                    dim.dim_value = new
    # Initializers listed as graph inputs block constant folding (and make onnxruntime chatty).
    initializer_names = {init.name for init in graph.initializer}
    kept = [i for i in graph.input if i.name not in initializer_names]
    del graph.input[:]
    graph.input.extend(kept)
    return model


def network_input(image: np.ndarray) -> np.ndarray:
    """The (1, 3, H, W) float blob CenterFace takes: the RGB image, zero-padded to multiples of 32."""
    h, w = image.shape[:2]
    ph, pw = -(-h // _STRIDE) * _STRIDE, -(-w // _STRIDE) * _STRIDE
    blob = np.zeros((1, 3, ph, pw), np.float32)
    blob[0, :, :h, :w] = image.transpose(2, 0, 1)
    return blob
