"""mmvidt: ViDT / ViDT+ detectors and PiT / ReXNet backbones for the OpenMMLab stack."""
from .version import __version__

__all__ = ["__version__"]
