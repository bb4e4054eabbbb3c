# ReXNet 1.3x on ImageNet-1k; same recipe as ReXNet 1.0x (see rexnet_1.0_4xb128-400e_in1k.py).
_base_ = './rexnet_1.0_4xb128-400e_in1k.py'

model = dict(backbone=dict(arch='1.3'), head=dict(in_channels=1664))
