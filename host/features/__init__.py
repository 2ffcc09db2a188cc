"""The feature pipeline on the host: the numpy twin of ``kpdev.device.pipeline`` (docs/packs.md).

Training, evaluation and pack building need the model inputs the device will make of a window.
The functions here compute them for many windows at once, with the device's arithmetic: sums run
left to right (``np.add.accumulate``, not numpy's pairwise ``sum``), the mean is computed before
any deviation from it, squares are ``x * x``.  The doubles then match the device's bit for bit,
so quantized inputs are the same bytes, and so are encoded ones (the thermometer thresholds are
computed with the device's operations, in its order).

Shapes: a window is ``(size, n_axes)``, a batch of windows ``(n, size, n_axes)``, features are
``(n_features,)`` or ``(n, n_features)``.  A spec's ``output.shape`` (``out_shape``) includes the
model's batch dimension: ``transform`` returns ``out_shape``; ``transform_batch`` returns
``(n, *out_shape[1:])`` when ``out_shape[0] == 1`` (as in every model input), else
``(n, *out_shape)``: see ``batch_shape``.  With an ``output.encoding`` each feature value
becomes ``levels`` values of 0 or 1 (uint8): the output holds ``n_features * levels`` values.

- ``spec``: reading and checking a spec, and the shapes and names it gives.
- ``transforms``: windows to features, scaled, quantized or encoded model inputs; cutting
  recordings into windows (``segment``, ``windows_of``).
- ``fit``: fitting the scaling and the output quantization to training data.

Everything public is importable from here: ``from kpdev.host import features``, then
``features.transform(spec, window)``.
"""

from kpdev.host.features.fit import fit_output, fit_scale
from kpdev.host.features.spec import (
    DEFAULT_K,
    ENCODINGS,
    GENERATORS,
    INPUT_DTYPES,
    MAX_LEVELS,
    OUTPUT_RANGES,
    batch_shape,
    check_spec,
    encoding,
    exact_std,
    feature_names,
    load_spec,
    n_features,
    out_shape,
    thresholds,
)
from kpdev.host.features.transforms import (
    apply_scale,
    features,
    features_batch,
    quantize,
    raw_input,
    segment,
    transform,
    transform_batch,
    windows_of,
)

__all__ = [
    "DEFAULT_K",
    "ENCODINGS",
    "GENERATORS",
    "INPUT_DTYPES",
    "MAX_LEVELS",
    "OUTPUT_RANGES",
    "apply_scale",
    "batch_shape",
    "check_spec",
    "encoding",
    "exact_std",
    "feature_names",
    "features",
    "features_batch",
    "fit_output",
    "fit_scale",
    "load_spec",
    "n_features",
    "out_shape",
    "quantize",
    "raw_input",
    "segment",
    "thresholds",
    "transform",
    "transform_batch",
    "windows_of",
]
