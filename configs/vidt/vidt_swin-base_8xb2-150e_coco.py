# ViDT Swin-base, 150 epochs: the 50-epoch config with the official 150-epoch
# schedule (cosine over 150 epochs, same off-by-one start).
_base_ = './vidt_swin-base_8xb2-50e_coco.py'

max_epochs = 150
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = dict(T_max=max_epochs, end=max_epochs)
