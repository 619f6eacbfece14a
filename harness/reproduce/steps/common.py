"""What the step modules share: which code folders key which steps."""

TRAIN_CODE = ("stackgan", "baselines", "harness/core", "harness/runner", "harness/data",
              "harness/config")
EVAL_CODE = ("harness/eval",)
# Runs whose samples the report shows under several noise vectors (diversity from CA).
DIVERSITY_RUNS = ("cub-sg-256", "cub-sg-256-noca")
