"""Engine-facing TorchScript wrappers and export code, installed as ``so3k.export``.

Import it as ``so3k.export``, never as a top-level ``export``.
"""
