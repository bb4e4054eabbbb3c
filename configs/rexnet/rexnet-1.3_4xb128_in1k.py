# ReXNet 1.3x on ImageNet-1k; same recipe as ReXNet 1.0x (see rexnet-1.0_4xb128_in1k.py).
_base_ = './rexnet-1.0_4xb128_in1k.py'

model = dict(backbone=dict(arch='1.3'), head=dict(in_channels=1664))
