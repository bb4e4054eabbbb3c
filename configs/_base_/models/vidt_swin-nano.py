# Transitional name of ./vidt_swin-ram.py, kept only because the shapes demo configs
# (../../vidt/vidt_swin-pico_1xb4-40e_shapes.py and its ViDT+ sibling) are being retuned on another
# branch: point them at ./vidt_swin-ram.py and delete this file when the branches meet.
_base_ = './vidt_swin-ram.py'
