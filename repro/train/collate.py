"""Batches for the Trainer: right-padded ids/labels, and pixel values loaded lazily per batch.

Images are opened only when their batch is built (LLaVA-Instruct has 665K of them), through the
same ``open_image``/``prepare_image`` path evaluation uses (with the stage's aspect-ratio rule:
LLaVA pads from stage 2 on, stage 1 uses CLIP's resize and centre crop), then the processor's
image processor.
Text-only samples may share a batch with image samples: LLaVA scatters the image features into
the image-token positions in order, so ``pixel_values`` holds only the images present.
"""

from __future__ import annotations

from repro.train.tokenize import IGNORE_INDEX, TokenizedSample


class TokenizedDataset:
    """A map-style dataset over encoded samples (``len`` + ``__getitem__`` is all torch needs)."""

    def __init__(self, samples: list[TokenizedSample]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> TokenizedSample:
        return self.samples[index]


class ConversationCollator:
    """Pads a list of ``TokenizedSample`` into model inputs; remembers the ids it has batched."""

    def __init__(self, pad_token_id: int, image_processor=None, aspect_ratio: str = "pad"):
        self.pad_token_id = pad_token_id
        self.image_processor = image_processor
        self.aspect_ratio = aspect_ratio  # repro.models.images.ASPECT_RATIOS
        self.seen_ids: list[str] = []  # consumption order in this process (tests compare with it)

    def __call__(self, batch: list[TokenizedSample]) -> dict:
        import torch

        width = max(len(s.input_ids) for s in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, sample in enumerate(batch):
            n = len(sample.input_ids)
            input_ids[row, :n] = torch.tensor(sample.input_ids, dtype=torch.long)
            labels[row, :n] = torch.tensor(sample.labels, dtype=torch.long)
            attention[row, :n] = 1
        self.seen_ids.extend(s.id for s in batch)
        out = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
        images = [s.image for s in batch if s.image is not None]
        if images:
            out["pixel_values"] = self.pixel_values(images)
        return out

    def pixel_values(self, paths):
        from repro.models.images import open_image, prepare_image

        if self.image_processor is None:
            raise ValueError("image samples need an image processor")  # guarded by tokenize
        prepared = [prepare_image(open_image(p), self.image_processor, self.aspect_ratio) for p in paths]
        return self.image_processor(images=prepared, return_tensors="pt")["pixel_values"]
