"""LLaVA's ``group_by_modality_length`` batching, on the Hugging Face Trainer's sampler hook.

LLaVA-1.5 stage 2 runs with ``--group_by_modality_length True`` (``scripts/v1_5/finetune.sh``):
``LLaVATrainer._get_train_sampler`` (``haotian-liu/LLaVA`` ``llava/train/llava_trainer.py``)
returns a ``LengthGroupedSampler`` over ``LazySupervisedDataset.modality_lengths`` (word count
per record, negative for text-only records) with ``batch_size`` = per-device batch and
``world_size`` = processes x gradient accumulation, so one "megabatch" is one optimizer step's
samples. The order it yields, rebuilt here:

1. image and text-only records are shuffled separately, cut into megabatches, each megabatch
   sorted by length (longest first) and dealt into ``world_size`` chunks of near-equal total
   length (``split_to_even_chunks``): every per-device batch is all-image or all-text;
2. the megabatches of both modalities (except the last, partial one of each) are shuffled
   together; the two partial ones form one final mixed megabatch (indices sorted);
3. when every record has the same modality, step 1 alone (length grouping) is the order.

The only difference is the random stream: LLaVA draws from torch's global RNG (which the
Trainer seeds); here a ``torch.Generator`` seeded with (seed, epoch) draws, so the order can be
rebuilt after a resume and for the data-order digest (``repro.train.common.consumed_order``).
"""

from __future__ import annotations

from repro.errors import InputError

GROUPING_POLICY = ("LLaVA group_by_modality_length: per-modality length-grouped megabatches of "
                   "per_device_batch x world_size x accumulation, shuffled together; the two "
                   "partial megabatches last, as one; torch.Generator seeded (seed, epoch)")


def even_chunks(indices: list[int], lengths: list[int], num_chunks: int) -> list[list[int]]:
    """Deal ``indices`` (sorted longest first) into ``num_chunks`` chunks: each goes to the chunk
    with the smallest total length until that chunk is full; round-robin when they do not divide."""
    if len(indices) % num_chunks:
        return [indices[i::num_chunks] for i in range(num_chunks)]
    per_chunk = len(indices) // num_chunks
    chunks: list[list[int]] = [[] for _ in range(num_chunks)]
    totals = [0.0] * num_chunks
    for index in indices:
        target = totals.index(min(totals))
        chunks[target].append(index)
        totals[target] += lengths[index]
        if len(chunks[target]) == per_chunk:
            totals[target] = float("inf")
    return chunks


def length_grouped(lengths: list[int], batch_size: int, world_size: int, generator) -> list[int]:
    """A random permutation, cut into megabatches, each sorted longest first and evenly chunked."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    size = world_size * batch_size
    out: list[int] = []
    for start in range(0, len(lengths), size):
        megabatch = sorted(order[start:start + size], key=lambda i: lengths[i], reverse=True)
        for chunk in even_chunks(megabatch, lengths, world_size):
            out.extend(chunk)
    return out


def modality_grouped(lengths: list[int], batch_size: int, world_size: int, generator) -> list[int]:
    """The LLaVA order (module docstring) of indices ``0..len(lengths)-1``."""
    import torch

    if any(length == 0 for length in lengths):
        raise InputError("group_by_modality_length: a record has no words (LLaVA asserts every "
                         "modality length is non-zero)")
    if all(length > 0 for length in lengths) or all(length < 0 for length in lengths):
        return length_grouped(lengths, batch_size, world_size, generator)
    image = [i for i, length in enumerate(lengths) if length > 0]
    text = [i for i, length in enumerate(lengths) if length < 0]
    size = world_size * batch_size
    megabatches: list[list[int]] = []
    tails: list[int] = []
    for members in (image, text):
        grouped = length_grouped([abs(lengths[i]) for i in members], batch_size, world_size, generator)
        shuffled = [members[i] for i in grouped]
        parts = [shuffled[i:i + size] for i in range(0, len(shuffled), size)]
        megabatches.extend(parts[:-1])
        tails.extend(parts[-1])
    order = [megabatches[i] for i in torch.randperm(len(megabatches), generator=generator).tolist()]
    if tails:
        order.append(sorted(tails))
    return [i for megabatch in order for i in megabatch]


class ModalityGroupedSampler:
    """A torch sampler yielding ``modality_grouped`` indices; reshuffled per epoch (``set_epoch``)."""

    def __init__(self, lengths: list[int], batch_size: int, world_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size, self.world_size, self.seed = batch_size, world_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(modality_grouped(self.lengths, self.batch_size, self.world_size, generator))


def grouped_trainer_class(base, lengths: list[int]):
    """``base`` (a Trainer class) whose training sampler is ``ModalityGroupedSampler``: the
    Trainer's own hook, ``_get_train_sampler``, as LLaVA's ``LLaVATrainer`` overrides it."""

    class ModalityGroupedTrainer(base):
        def _get_train_sampler(self, train_dataset=None):
            args = self.args
            seed = args.data_seed if args.data_seed is not None else args.seed
            return ModalityGroupedSampler(lengths, args.per_device_train_batch_size,
                                          max(1, args.world_size) * args.gradient_accumulation_steps,
                                          seed)

    return ModalityGroupedTrainer
