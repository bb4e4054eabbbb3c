"""Models; importing this package registers them into mmdet's / mmpretrain's registries."""
from . import backbones, heads  # noqa: F401
