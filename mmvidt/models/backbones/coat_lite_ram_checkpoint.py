"""Key map of CoaT-Lite checkpoints (the official ImageNet release, the body of official ViDT-CoaT
detectors) onto :class:`~mmvidt.models.backbones.CoaTLiteRAM`.

Official names are 1-based per stage (``serial_blocks1``, ``cls_token1``, ``det_exp_1`` feeding
stage 2, ...); mmvidt groups everything of a stage under ``stages.{s}`` (0-based). The map lives
next to the model because ``init_cfg`` loading of ImageNet weights needs it.
"""
import re
from typing import Optional

#: ``(pattern, replacement)`` with ``{s}`` = official stage number - 1 (group 1 is the number).
_STAGE_RULES = (
    (r'cls_token(\d)', 'stages.{s}.cls_token'),
    (r'patch_embed([1-4])\.proj\.(.+)', 'stages.{s}.patch_embed.projection.{rest}'),
    (r'patch_embed([1-4])\.norm\.(.+)', 'stages.{s}.patch_embed.norm.{rest}'),
    (r'cpe(\d)\.proj\.(.+)', 'stages.{s}.cpe.proj.{rest}'),
    (r'crpe(\d)\.conv_list\.(.+)', 'stages.{s}.crpe.conv_list.{rest}'),
    (r'serial_blocks(\d)\.(\d+\.)norm([12])\.(.+)', 'stages.{s}.blocks.{2}norm{3}.{4}'),
    (r'serial_blocks(\d)\.(\d+\.)factoratt_crpe\.(qkv|proj)\.(.+)',
     'stages.{s}.blocks.{2}attn.{3}.{4}'),
    (r'serial_blocks(\d)\.(\d+\.)mlp\.fc1\.(.+)', 'stages.{s}.blocks.{2}ffn.layers.0.0.{3}'),
    (r'serial_blocks(\d)\.(\d+\.)mlp\.fc2\.(.+)', 'stages.{s}.blocks.{2}ffn.layers.1.{3}'),
    (r'serial_blocks(\d)\.(\d+\.)det_pos_linear\.(.+)', 'stages.{s}.blocks.{2}det_pos_linear.{3}'),
)
#: ``det_exp_k`` / ``det_exp_norm_k`` widen the [DET] tokens entering stage k (0-based).
_OTHER_RULES = (
    (r'det_exp_(\d)\.weight', r'stages.\1.det_proj.0.weight'),
    (r'det_exp_norm_(\d)\.(weight|bias)', r'stages.\1.det_proj.1.\2'),
    (r'patch_embed5\.proj\.(.+)', r'last_patch_embed.projection.\1'),
    (r'patch_embed5\.norm\.(.+)', r'last_patch_embed.norm.\1'),
    (r'(det_token|det_pos_embed)', r'\1'),
)
#: Per-block aliases of the stage-shared position encodings (the same tensors again).
COAT_SHARED_ALIASES = re.compile(r'serial_blocks\d\.\d+\.(cpe|factoratt_crpe\.crpe)\.')

def coat_key_to_mmvidt(key: str) -> Optional[str]:
    """Rename one official CoaT key (without ``backbone.``).

    Returns None for the per-block aliases of shared position encodings; unknown keys (e.g. the
    classifier ``head`` or ``norm4``) are returned unchanged so callers can report them.
    """
    if COAT_SHARED_ALIASES.match(key):
        return None
    for pattern, replacement in _STAGE_RULES:
        match = re.fullmatch(pattern, key)
        if match:
            groups = match.groups()
            return replacement.format(*(('', ) + groups), s=int(groups[0]) - 1,
                                      rest=groups[-1])
    for pattern, replacement in _OTHER_RULES:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(replacement)
    return key
