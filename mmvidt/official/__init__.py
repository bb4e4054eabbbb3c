"""Everything about the official formats (naver-ai/vidt, naver-ai/pit, clovaai/rexnet, timm).

Key maps of official detector / classifier checkpoints, the translation of official command-line
options into mmvidt model configs, and the parity harness against reference outputs of the
official code (:mod:`.parity`). This layer depends on the core (``mmvidt.models``, ``ops``,
``datasets``, ``engine``) and ``mmvidt.utils``; the core never imports it.
"""
