# ViDT Swin-tiny trained with token-matching distillation from ViDT Swin-base (50 epochs),
# the official README "+ distil" row (ViDT paper Sec. 3.3): loss_distil weight 4.0. The teacher
# (frozen, eval mode, not saved in checkpoints) is built from its config and loaded from an
# mmvidt checkpoint; convert the official release once:
#   python tools/model_converters/vidt2mmvidt.py vidt_base_50.pth \
#       checkpoints/vidt_swin-base_8xb2-50e_coco.pth \
#       --config configs/vidt/vidt_swin-base_8xb2-50e_coco.py
# (vidt_base_50.pth: https://github.com/naver-ai/vidt/releases/download/v0.1-vidt/vidt_base_50.pth)
_base_ = '../vidt/vidt_swin-tiny_8xb2-50e_coco.py'
model = dict(
    type='ViDTDistiller',
    teacher_config='{{fileDirname}}/../vidt/vidt_swin-base_8xb2-50e_coco.py',
    teacher_ckpt='checkpoints/vidt_swin-base_8xb2-50e_coco.pth',
    distil_loss=dict(type='TokenMatchingLoss', loss_weight=4.0))
