"""Runs one training in its own process, for tests that kill or signal it: `python -m tests.train_worker`.

Arguments: a JSON object {"overrides": [...], "run_name": "..."}; prints the summary JSON on success.
"""

import json
import sys

from handgesture.config import load_config
from handgesture.training import run_training

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    config = load_config("configs/demo.yaml", spec["overrides"])
    result = run_training(config, run_name=spec["run_name"])
    print(
        json.dumps({k: getattr(result, k) for k in ("run_uri", "last_checkpoint", "global_step", "epochs")})
    )
