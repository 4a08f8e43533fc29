"""Reading one image file: any common PNG/JPEG/TIFF flavour in, RGB ``uint8 [H, W, 3]`` out (training, extraction
and the demo alike).

Detectron2's ``read_image(path, "RGB")`` applies EXIF orientation but converts with Pillow's ``convert("RGB")``, which
clips 16-bit samples at 255, so a 16-bit PNG comes out almost white. Here the samples are rescaled to 8 bits first.
Every failure (missing, corrupt or truncated file, decompression bomb, unsupported mode) becomes one
:class:`ImageReadError` that names the file, so a caller can count the skip instead of crashing.
"""
import warnings
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detectron2.utils.file_io import PathManager

__all__ = ["ImageReadError", "read_image_rgb", "to_uint8_rgb"]


class ImageReadError(ValueError):
    """An image file that cannot be turned into an RGB frame; the message names the file and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = path
        self.reason = reason


def _scale_to_uint8(values: np.ndarray, full_scale: Optional[float]) -> np.ndarray:
    """Map samples to 0..255: by the format's full scale when known (a 16-bit sample of 65535 is white, as the PNG
    and TIFF specifications define), else by the image's own finite min..max (float or 32-bit data)."""
    values = values.astype(np.float64)
    if full_scale is None:
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        values = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
        values = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    else:
        values = values / full_scale
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def to_uint8_rgb(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode -> RGB ``uint8 [H, W, 3]``.

    * 16-bit gray (``I;16*``): scaled by 65535 (not clipped at 255);
    * 32-bit int (``I``): scaled by 65535 when every sample fits in 16 bits (how some decoders hand over 16-bit
      PNGs), else by its own min..max; float (``F``): by 1.0 when in 0..1, else by its own min..max;
    * palette, gray, ``LA``/``RGBA``/``PA``, CMYK, YCbCr: Pillow's own conversion. Alpha is dropped, as
      Detectron2's ``read_image`` drops it, so the demo sees the pixels the dataset loaders see.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image)
        if mode.startswith("I;16"):
            full = 65535.0
        elif mode == "I":
            full = 65535.0 if values.size and 0 <= values.min() and values.max() <= 65535 else None
        else:
            finite = values[np.isfinite(values)]
            full = 1.0 if finite.size and 0.0 <= finite.min() and finite.max() <= 1.0 else None
        gray = _scale_to_uint8(values, full)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode != "RGB":
        image = image.convert("RGB")
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"Pillow mode {mode} converted to {rgb.dtype} {rgb.shape}, not RGB uint8")
    return np.ascontiguousarray(rgb)


def read_image_rgb(path: str, max_pixels: Optional[int] = None) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]`` of the image file ``path`` (through iopath's PathManager), EXIF orientation applied.

    ``max_pixels`` (default: Pillow's ``Image.MAX_IMAGE_PIXELS``) rejects images whose header claims more pixels,
    before any of them is decoded: a small file can claim 20000 x 20000 and exhaust memory.
    Raises :class:`ImageReadError` for every failure.
    """
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with PathManager.open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the explicit check below decides
            image = Image.open(f)
            width, height = image.size
            if limit and width * height > limit:
                raise ImageReadError(path, f"its header claims {width}x{height} = {width * height} pixels, over the "
                                           f"limit of {limit}: a decompression bomb or a huge scan; resize it")
            if width <= 0 or height <= 0:
                raise ImageReadError(path, f"empty image ({width}x{height})")
            image.load()  # decode now, inside the try: a truncated file fails here, naming the file
            image = ImageOps.exif_transpose(image)
            return to_uint8_rgb(image)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"a decompression bomb or a huge scan, refused by Pillow ({e}); resize it") from e
    except UnidentifiedImageError as e:
        raise ImageReadError(path, "not an image Pillow can identify (corrupt, or not an image file)") from e
    except FileNotFoundError as e:
        raise ImageReadError(path, "file not found") from e
    except (OSError, ValueError, SyntaxError, MemoryError) as e:
        # Pillow reports truncated or damaged data as OSError/ValueError/SyntaxError, depending on the plugin
        raise ImageReadError(path, f"damaged or unsupported image data ({type(e).__name__}: {e})") from e
