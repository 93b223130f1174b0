"""HaGRID data: reading annotations, the crop and frame caches, datasets and loaders.

annotations     HaGRID's JSON annotations -> one Sample per hand box; the person split
                (entries validates one entry; entry_json decodes a file without v2's landmarks, fast;
                index_plain reads a file as HaGRID writes it, checked as decoded; index_samples holds the
                Sample and the tally; index_halves reads a large folder in two processes, index_fork)
sources         where data lives: folders, zips, folders of per-gesture zips, S3 prefixes, chained URLs
                (locators parses them, reading holds this process's settings and archive indexes,
                locations opens files and objects, archives reads zip members in place, prefetch reads
                ahead in shared GETs, source_annotations reads annotations from any of them)
geometry        crop boxes (pure functions)
synthetic       a synthetic dataset in HaGRID's format (the demo's and the tests' data)
cache           the crop cache: keyed by content, verified, prepared once (cache_build cuts the rows,
                cached_dataset reads them, cache_share shares them through a store, key_lines writes the
                key's per-sample text)
dataset         the full-frame crop dataset, the resumable epoch sampler, the skipping loader
full_frames     full-frame classification (model.full_frame): v2's label rule, the letterbox, its dataset
prepare         the prepare-data step: what it prepared, and opening it again for training
prepare_sharded the prepare step in shards on a Dask cluster (shards builds one part; worker_heap keeps a
                worker's frame buffers on the heap)
loaders         the train / validation / test loaders a run or an evaluation reads
"""
