# ReXNet-lite 1.0x (no SE, ReLU6 everywhere, channels divisible by 8) on ImageNet-1k. Head as the
# official one: pool -> FC 1024 + BN + ReLU6 + dropout 0.2 -> FC. Training recipe of ReXNet.
_base_ = './rexnet_1.0_4xb128-400e_in1k.py'

model = dict(backbone=dict(arch='lite-1.0'),
             head=dict(_delete_=True,
                       type='StackedLinearClsHead',
                       num_classes=1000,
                       in_channels=1280,
                       mid_channels=[1024],
                       dropout_rate=0.2,
                       norm_cfg=dict(type='BN1d'),
                       act_cfg=dict(type='ReLU6'),
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
                       topk=(1, 5)))
