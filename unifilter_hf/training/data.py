"""The training and validation splits: the generated shapes world, or the four-level synthetic builder.

Example:
    >>> from unifilter_hf.training.arguments import DataArguments
    >>> dd = load_training_data(DataArguments(train_scenes=2, validation_scenes=1), seed=0)  # doctest: +SKIP
    >>> dd["train"].num_rows, dd["validation"].num_rows  # doctest: +SKIP
    (8, 4)
"""

from __future__ import annotations

import functools

import datasets

from .arguments import DataArguments


def load_training_data(args: DataArguments, seed: int = 0) -> datasets.DatasetDict:
    """A ``DatasetDict`` with ``train`` and ``validation`` splits of builder-schema rows."""
    if args.dataset == "shapes_world":
        from ..synthesis.shapes_world import shapes_world_dataset
        from ..synthesis.shapes_world_documents import shapes_world_mixed_dataset

        gen_seed = seed + args.data_seed_offset
        options = {"seed": gen_seed, "image_size": args.image_size, "blank_images": args.blank_images}
        if args.document_share:  # captions and documents in one table (the document layout)
            make = functools.partial(shapes_world_mixed_dataset, document_share=args.document_share)
        else:
            make = shapes_world_dataset
        dd = datasets.DatasetDict({
            "train": make(args.train_scenes, split="train", **options),
            "validation": make(args.validation_scenes, split="validation", **options),
        })
    elif args.dataset_layout == "official":
        from .official_data import official_dataset, split_by_group

        train = official_dataset(args.dataset, args.image_folder)
        if args.validation_file:
            dd = datasets.DatasetDict({"train": train,
                                       "validation": official_dataset(args.validation_file, args.image_folder)})
        else:
            dd = split_by_group(train, args.validation_fraction, seed)
    elif args.dataset_layout != "builder":
        raise ValueError(f"dataset_layout must be 'builder' or 'official', got {args.dataset_layout!r}")
    elif args.validation_file:
        raise ValueError("validation_file needs dataset_layout: official (the builder splits its source by group)")
    else:
        from ..datasets_builder import build_synthetic

        dd = build_synthetic(args.dataset_config, source=args.dataset, image_folder=args.image_folder, seed=seed,
                             validation_fraction=args.validation_fraction)
    for split, limit in (("train", args.max_train_samples), ("validation", args.max_eval_samples)):
        if limit is not None and dd[split].num_rows > limit:
            dd[split] = dd[split].select(range(limit))
    return dd
