# PiT-XS distilled (class + distillation token, two classifiers averaged at inference).
# For evaluation / fine-tuning of the official "+Distill" weights: mmpretrain's DeiTClsHead trains
# both classifiers on the ground truth only (no teacher), so this is not the distillation recipe.
_base_ = './pit_xs_8xb128-300e_in1k.py'

model = dict(backbone=dict(distilled=True), head=dict(type='DeiTClsHead', in_channels=384))
