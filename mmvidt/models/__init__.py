"""Models; importing this package registers them into mmdet's / mmpretrain's registries."""
from . import backbones, dense_heads, detectors, layers, losses, necks  # noqa: F401
from . import data_preprocessors, heads  # noqa: F401
