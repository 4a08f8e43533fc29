"""Runtime compatibility for Detectron2 v0.6 installed as pure Python.

Detectron2 has no official PyPI release. The installer in ``tools/install_detectron2.sh`` builds the
``pb1-detectron2==0.6`` sdist without its C++/CUDA extension, which leaves three gaps that this module
closes *before* any ``detectron2`` submodule is imported. Every patch is a no-op when the full,
compiled Detectron2 (``pip install 'git+https://github.com/facebookresearch/detectron2.git'``) is present.

1. ``detectron2._C`` is missing: ``detectron2.layers.deform_conv`` and the fast COCOeval import it at
   module level. WISH needs none of those ops, so a stand-in module is installed whose ops raise a
   clear error if anything ever calls them. ``COCOEvaluator`` must then run with ``use_fast_impl=False``
   (see :data:`HAS_COMPILED_OPS`).
2. Pillow >= 10 removed ``Image.LINEAR``, which ``detectron2.data.transforms`` uses as a default
   argument; it is an alias of ``Image.BILINEAR``.
3. ``detectron2.model_zoo`` yaml files are not packaged in the sdist; WISH never reads them.
"""
import sys
import types

import PIL.Image

__all__ = ["HAS_COMPILED_OPS", "apply"]

HAS_COMPILED_OPS = True


def _missing_ops_module() -> types.ModuleType:
    module = types.ModuleType("detectron2._C")
    module.__doc__ = "Stand-in installed by wish_d2.compat: this Detectron2 has no compiled ops."

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            raise RuntimeError(
                f"detectron2._C.{name} is not available: Detectron2 was installed without its compiled "
                "ops (pure-Python install). Install the official build from GitHub to use this op."
            )

        return unavailable

    module.__getattr__ = __getattr__
    # Informational queries (``collect_env_info`` in ``default_setup``) answer instead of raising.
    module.get_compiler_version = lambda: "none (pure-Python Detectron2, see wish_d2/compat.py)"
    module.get_cuda_version = lambda: "none"
    module.has_cuda = lambda: False
    return module


def apply() -> None:
    """Install the shims. Idempotent; called on ``import wish_d2``."""
    global HAS_COMPILED_OPS
    if not hasattr(PIL.Image, "LINEAR"):
        PIL.Image.LINEAR = PIL.Image.BILINEAR

    import detectron2

    try:
        from detectron2 import _C  # noqa: F401
    except ImportError:
        HAS_COMPILED_OPS = False
        stand_in = _missing_ops_module()
        sys.modules["detectron2._C"] = stand_in
        detectron2._C = stand_in


apply()
