"""Checkpoints in a store: the file format, run folders, background uploads, and finding one by URI.

    format         checkpoint bytes <-> dict (safe load), compatibility check, JSON records
    run_folder     a run's folder: atomic commits, the manifest written last, retention
    uploader       background uploads to a remote store, in commit order, outages retried
    locate         URI -> verified checkpoint (file, run folder, s3://, prefect://, <experiment>/best)
    best           the experiment's best pointer (best.json)
    prefect_refs   prefect://flow-runs/<id> references, read through the Prefect API

What a checkpoint holds and how a trainer is restored from it: `handgesture.training.state`.
"""
