# ViDT Swin-small trained with token-matching distillation from ViDT Swin-base (50 epochs),
# the official README "+ distil" row (VIDT.md §6, §9.1): loss_distil weight 4.0. The teacher
# (frozen, eval mode, not saved in checkpoints) is built from its config and loaded from the
# official release (converted on the fly) or from an mmvidt checkpoint.
_base_ = '../vidt/vidt_swin-small_8xb2-50e_coco.py'
model = dict(
    type='ViDTDistiller',
    teacher_config='{{fileDirname}}/../vidt/vidt_swin-base_8xb2-50e_coco.py',
    teacher_ckpt='https://github.com/naver-ai/vidt/releases/download/v0.1-vidt/vidt_base_50.pth',
    distil_loss=dict(type='TokenMatchingLoss', loss_weight=4.0))
