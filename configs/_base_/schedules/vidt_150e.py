# The official 150-epoch ViDT schedule: vidt_50e.py with T = 150.
_base_ = './vidt_50e.py'

max_epochs = 150

train_cfg = dict(max_epochs=max_epochs)

param_scheduler = [
    dict(type='CosineAnnealingLR',
         T_max=max_epochs,
         eta_min=1e-7,
         begin=1,
         end=max_epochs,
         by_epoch=True)
]
