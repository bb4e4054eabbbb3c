# PiT-XS on ImageNet-1k; same DeiT recipe as PiT-S (see pit_s_8xb128-300e_in1k.py).
_base_ = './pit_s_8xb128-300e_in1k.py'

model = dict(backbone=dict(arch='xs'), head=dict(in_channels=384))
