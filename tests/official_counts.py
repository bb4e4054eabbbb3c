"""Parameter counts of the official ViDT models, derived from their key shapes.

The official models keep parameters no forward uses; mmvidt drops them, so tests compare
``mmvidt count + dropped count`` with the published numbers (docs/official_behaviour.md#parameter-counts).
"""

#: ``transformer.level_embed`` (4 levels x 256): defined, never used by the official neck.
LEVEL_EMBED_PARAMS = 4 * 256


def official_backbone_param_count(C, depths, heads, N=100, pos_dim=256, ws=7, last_merge=True):
    """Unique parameters of the official backbone, counted from its key shapes.

    Includes the parameters no forward uses: every merge's ``expansion`` / ``norm2`` and the
    ``norm1..3`` output norms.
    """
    n = 3 * 16 * C + C + 2 * C + N * C + N * pos_dim  # patch embed (conv + LN), det token / pos
    for s, (depth, h) in enumerate(zip(depths, heads)):
        d = C * 2**s
        block = (2 * d + (2 * ws - 1)**2 * h + 3 * d * d + 3 * d + d * d + d + 2 * d +
                 4 * d * d + 4 * d + 4 * d * d + d + pos_dim * d + d)
        n += depth * block
        if s < 3 or last_merge:
            out = 2 * d if s < 3 else 256
            n += 4 * d * out + 8 * d + d * out + 2 * d  # reduction, norm, expansion, norm2
    return n + 2 * (2 * C + 4 * C + 8 * C)  # norm1..3


def official_unused_param_count(C, last_merge=True):
    """Parameters of the official backbone that SwinRAM drops (expansion/norm2, norm1..3)."""
    merges = sum(C * 2**s * 2 * C * 2**s + 2 * C * 2**s for s in range(3))
    if last_merge:
        merges += 8 * C * 256 + 2 * 8 * C
    return merges + 2 * (2 * C + 4 * C + 8 * C)


def wo_neck_head_param_count(C3, d=256, num_classes=92):
    """input_proj (1x1 conv + GN) and the 3-layer class / box MLPs of ViDT w/o neck."""
    return C3 * d + d + 2 * d + 2 * (d * d + d) + d * num_classes + num_classes + \
        2 * (d * d + d) + d * 4 + 4
