# The ImageNet-pretrained weights of every body, written once. A config whose bases include this
# file picks one with `init_cfg={{_base_.imagenet_pretrained.<name>}}`.
imagenet_pretrained = dict(
    # The Swin releases the official ViDT README lists: NAVER's Swin-nano (IN-1k), Microsoft's
    # Swin-tiny / small (IN-1k) and Swin-base (IN-22k); loaded by SwinRAM's key map.
    swin_nano=dict(type='Pretrained',
                   checkpoint='https://github.com/naver-ai/vidt/releases/download/v0.1-swin/'
                   'swin_nano_patch4_window7_224.pth'),
    swin_tiny=dict(type='Pretrained',
                   checkpoint='https://github.com/SwinTransformer/storage/releases/download/'
                   'v1.0.0/swin_tiny_patch4_window7_224.pth'),
    swin_small=dict(type='Pretrained',
                    checkpoint='https://github.com/SwinTransformer/storage/releases/download/'
                    'v1.0.0/swin_small_patch4_window7_224.pth'),
    swin_base=dict(type='Pretrained',
                   checkpoint='https://github.com/SwinTransformer/storage/releases/download/'
                   'v1.0.0/swin_base_patch4_window7_224_22k.pth'),
    # timm's CoaT-Lite release (the weights the official ViDT code loads).
    coat_lite_tiny=dict(type='Pretrained',
                        checkpoint='https://github.com/rwightman/pytorch-image-models/releases/'
                        'download/v0.1-coat-weights/coat_lite_tiny-461b07a7.pth'),
    coat_lite_mini=dict(type='Pretrained',
                        checkpoint='https://github.com/rwightman/pytorch-image-models/releases/'
                        'download/v0.1-coat-weights/coat_lite_mini-d7842000.pth'),
    coat_lite_small=dict(type='Pretrained',
                         checkpoint='https://github.com/rwightman/pytorch-image-models/releases/'
                         'download/v0.1-coat-weights/coat_lite_small-fea1d5a1.pth'),
    # The official PiT / ReXNet weights are Google Drive files: convert them once into these paths
    # (configs/pit/README.md, configs/rexnet/README.md); `prefix` takes the classifier's backbone.
    pit_s=dict(type='Pretrained', checkpoint='checkpoints/pit-s_in1k_mmvidt.pth',
               prefix='backbone.'),
    pit_b=dict(type='Pretrained', checkpoint='checkpoints/pit-b_in1k_mmvidt.pth',
               prefix='backbone.'),
    rexnet_1_0=dict(type='Pretrained', checkpoint='checkpoints/rexnet-1.0_in1k_mmvidt.pth',
                    prefix='backbone.'),
)
