"""Parameter counts of the official models, counted by instantiating the official code.

The official ViDT models keep parameters no forward uses; mmvidt drops them, so tests compare
``mmvidt count + dropped count`` with these numbers (the official READMEs print them floored to
millions).
"""

#: ViDT (100 [DET] tokens, 6 decoder layers, iterative box refinement) per Swin arch.
VIDT_COUNTS = dict(nano=15_728_677, tiny=37_962_901, small=60_465_061, base=99_959_635)
#: ViDT with 4 decoder layers (decoding-layer drop).
VIDT_4DEC_COUNTS = dict(nano=13_375_591, tiny=35_609_815, small=58_111_975)
#: ViDT+ box-evaluation model (300 tokens, EPFF) and full training model (+ IoU-aware, token
#: labels, UQR).
VIDT_PLUS_BOX_COUNTS = dict(nano=16_612_773, tiny=38_856_597, small=61_358_757,
                            base=100_859_731)
VIDT_PLUS_FULL_COUNTS = dict(nano=17_822_727, tiny=40_066_551, small=62_568_711,
                             base=102_069_685)
#: ViDT+ box-evaluation model with 4 decoder layers (the "optimized" ViDT+).
VIDT_PLUS_4DEC_COUNTS = dict(nano=14_259_687, tiny=36_503_511, small=59_005_671)
#: ViDT without neck (100 tokens).
VIDT_WO_NECK_COUNTS = dict(nano=7_997_418, tiny=29_564_250, small=52_066_410)
#: ViDT (100 tokens, refinement) with CoaT-Lite bodies.
VIDT_COAT_COUNTS = dict(tiny=13_894_427, mini=19_525_147, small=28_894_875)
#: PiT (arch, distilled): (total with 1000 classes, without head(s), final norm included).
PIT_COUNTS = {
    ('ti', False): (4_847_272, 4_590_272),
    ('xs', False): (10_618_888, 10_233_888),
    ('s', False): (23_461_912, 22_884_912),
    ('b', False): (73_764_840, 72_739_840),
    ('ti', True): (5_104_336, 4_590_336),
    ('xs', True): (11_003_984, 10_233_984),
    ('s', True): (24_039_056, 22_885_056),
    ('b', True): (74_790_096, 72_740_096),
}
#: ReXNet arch: (total with 1000 classes, stem + blocks only, + final 1x1 conv).
REXNET_COUNTS = {
    '1.0': (4_796_873, 3_276_513, 3_515_873),
    '1.3': (7_557_091, 5_489_403, 5_892_091),
    '1.5': (9_728_593, 7_271_913, 7_807_593),
    '2.0': (16_366_620, 12_853_300, 13_805_620),
    '3.0': (34_708_792, 28_732_752, 30_867_792),
    'lite-1.0': (4_740_056, 2_163_184, 2_401_264),
    'lite-1.3': (6_747_960, 3_626_576, 4_015_952),
    'lite-1.5': (8_332_296, 4_812_064, 5_338_144),
    'lite-2.0': (12_966_200, 8_389_968, 9_316_688),
}

#: ``transformer.level_embed`` (4 levels x 256): defined, never used by the official neck.
LEVEL_EMBED_PARAMS = 4 * 256
#: The coarsest EPFF block's smoothing conv and first residual unit: built, never used.
EPFF_UNUSED_PARAMS = (256 * 256 + 256) + (256 * 64 + 64 + 64 * 64 * 9 + 64 + 64 * 256 + 256)


def official_backbone_param_count(C, depths, heads, N=100, pos_dim=256, ws=7, last_merge=True):
    """Unique parameters of the official backbone, counted from its checkpoint key shapes.

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
