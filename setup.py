"""wish_d2: WISH (weakly-supervised in-hand object segmentation from narrations) as a Detectron2 plugin.

Detectron2 itself is not listed in install_requires: it has no official PyPI release, and the two
supported installs (the official GitHub build, or ``tools/install_detectron2.sh``) have different
distribution names. ``make setup`` installs it; ``import wish_d2`` explains what to do when it is absent.
"""
from setuptools import find_packages, setup

setup(
    name="wish_d2",
    version="0.1.0",
    description="WISH: weakly-supervised in-hand object segmentation learned from narrations, for Detectron2",
    python_requires=">=3.10",
    packages=find_packages(include=["wish_d2", "wish_d2.*"]),
    package_data={"wish_d2": ["model_configs/*.json", "model_zoo/*.pt", "model_zoo/*.json"]},
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "open_clip_torch==3.3.0",  # the mask-pooling adapter touches its ViT internals: keep pinned
        "segment-anything==1.0",
        "pycocotools==2.0.11",
        "fvcore==0.1.5.post20221221",
        "iopath==0.1.9",
        "tqdm>=4.60",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "matplotlib>=3.5",  # the video gallery's timeline plot
        "setuptools<81",  # detectron2 0.6 imports pkg_resources
    ],
    extras_require={
        "gsam": ["transformers==5.23.0"],  # Grounding DINO for the GSAM proposal generator
        "dev": ["pytest>=8"],
    },
)
