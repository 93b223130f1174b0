"""HaGRID data: reading annotations, the crop and frame caches, datasets and loaders.

annotations     HaGRID's JSON annotations -> one Sample per hand box; the person split
                (entries validates one entry; entry_json decodes a file without v2's landmarks, fast)
geometry        crop boxes (pure functions)
synthetic       a synthetic dataset in HaGRID's format (the demo's and the tests' data)
cache           the crop cache: keyed by content, verified, prepared once (cache_build cuts the rows,
                cached_dataset reads them, cache_share shares them through a store, key_lines writes the
                key's per-sample text)
dataset         the full-frame crop dataset, the resumable epoch sampler, the skipping loader
full_frames     full-frame classification (model.full_frame): v2's label rule, the letterbox, its dataset
prepare         the prepare-data step: what it prepared, and opening it again for training
loaders         the train / validation / test loaders a run or an evaluation reads
"""
