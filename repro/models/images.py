"""Image loading and LLaVA-1.5 preprocessing, shared by training and evaluation.

LLaVA-1.5 pads a non-square image to a square filled with the processor's mean colour
(``image_aspect_ratio pad``) before CLIP preprocessing; the HF image processor does not do this
by default. Training and evaluation both call ``prepare_image`` so they can never differ, and the
choice is recorded as the protocol value ``IMAGE_PREPROCESSING``.

LLaVA's stage 1 sets no aspect ratio (``scripts/v1_5/pretrain.sh``; ``finetune.sh`` sets
``--image_aspect_ratio pad``), so ``LazySupervisedDataset`` gives the image straight to the CLIP
processor: resize of the shortest edge, then a centre crop. ``ASPECT_RATIOS`` names both, with
LLaVA's own values (``pad``; ``square``, its ``DataArguments`` default).
"""

from __future__ import annotations

from pathlib import Path

from repro.errors import InputError

IMAGE_PREPROCESSING = "llava1.5-pad-to-square-mean-then-clip"
ASPECT_RATIOS = {"pad": IMAGE_PREPROCESSING,
                 "square": "clip-resize-shortest-edge-then-centre-crop (llava image_aspect_ratio square)"}


def open_image(path: Path):
    """Open an image as RGB, with a one-line error naming the file when missing or corrupt."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise InputError(f"{path}: image file not found") from None
    except Image.DecompressionBombError:  # the header claims more pixels than PIL will allocate
        raise InputError(f"{path}: image header claims too many pixels (PIL's decompression-bomb "
                         f"limit is {2 * Image.MAX_IMAGE_PIXELS})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or unreadable image ({exc.__class__.__name__})") from None


def pad_to_square(img, background: tuple[int, int, int]):
    from PIL import Image

    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    result = Image.new(img.mode, (side, side), background)
    result.paste(img, ((side - width) // 2, (side - height) // 2))
    return result


def prepare_image(img, image_processor, aspect_ratio: str = "pad"):
    """LLaVA-1.5 pad-to-square with the processor's mean colour (``pad``), or the image unchanged
    for the CLIP processor's own resize and centre crop (``square``); returns a PIL image."""
    if aspect_ratio == "square":
        return img
    if aspect_ratio != "pad":
        raise InputError(f"params: image_aspect_ratio: {aspect_ratio!r}; expected one of "
                         f"{', '.join(ASPECT_RATIOS)}")
    mean = getattr(image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
    # int(), not round(): LLaVA's expand2square fill, tuple(int(x*255) for x in image_mean)
    # (llava/train/train.py LazySupervisedDataset; (122, 116, 104) for CLIP's mean)
    return pad_to_square(img, tuple(int(m * 255) for m in mean))
