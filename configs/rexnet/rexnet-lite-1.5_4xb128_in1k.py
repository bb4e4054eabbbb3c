# ReXNet-lite 1.5x on ImageNet-1k (see rexnet-lite-1.0_4xb128_in1k.py).
_base_ = './rexnet-lite-1.0_4xb128_in1k.py'

model = dict(backbone=dict(arch='lite-1.5'), head=dict(in_channels=1920))
