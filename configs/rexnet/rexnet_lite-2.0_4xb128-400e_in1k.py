# ReXNet-lite 2.0x on ImageNet-1k (see rexnet_lite-1.0_4xb128-400e_in1k.py).
_base_ = './rexnet_lite-1.0_4xb128-400e_in1k.py'

model = dict(backbone=dict(arch='lite-2.0'), head=dict(in_channels=2560))
