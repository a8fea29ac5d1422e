"""so3k: So3krates machine-learned force fields in PyTorch."""

__version__ = "0.1.0"


def build_model(preset: str = "neurips2022", elements=(), **overrides):
    """An untrained So3krates model, e.g. ``so3k.build_model("neurips2022", elements=["C", "H", "O"])``.

    Presets: "neurips2022" (Frank et al. 2022) and "euclidean2024" (Frank et al. 2024); any field
    of :class:`so3k.config.ModelConfig` can be overridden by keyword.
    """
    from .model import build_model as _build  # torch is imported only when a model is wanted

    return _build(preset, elements, **overrides)
