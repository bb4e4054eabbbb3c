"""The feed-forward half of every RAM block (Swin-RAM and CoaT-Lite-RAM)."""
from mmcv.cnn.bricks.transformer import FFN


def residual_ffn(embed_dims: int, mlp_ratio: float, drop_rate: float,
                 drop_path_rate: float) -> FFN:
    """``x + DropPath(FC(GELU(FC(x))))`` with dropout after each FC, as mmcv's ``FFN``; called
    as ``ffn(norm2(x), identity=x)`` on (B, L, C) tokens."""
    return FFN(
        embed_dims=embed_dims,
        feedforward_channels=int(embed_dims * mlp_ratio),
        num_fcs=2,
        ffn_drop=drop_rate,
        dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
        act_cfg=dict(type='GELU'),
        add_identity=True)
