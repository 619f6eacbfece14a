"""``stackgan-bench tracking replay``."""

from __future__ import annotations

from harness.cli.common import add_command, add_group


def register(sub) -> None:
    group = add_group(sub, "tracking", "Experiment tracking utilities.")
    p = add_command(group, "replay", "Send a run's locally kept tracking records (kept while the "
                    "server was unreachable) to the tracking server.",
                    "stackgan-bench tracking replay runs/quick_stage1")
    p.add_argument("run", help="run folder")
    p.add_argument("--uri", default=None, help="tracking URI (default: the run's config, "
                   "MLFLOW_TRACKING_URI, else the local SQLite store)")
    p.set_defaults(func=_replay)


def _replay(args) -> int:
    from pathlib import Path

    from harness.config.load import from_yaml_file
    from harness.tracking.mlflow_tracker import default_uri, replay

    cfg = from_yaml_file(Path(args.run) / "config.yaml")
    uri = args.uri or cfg.tracking.uri or default_uri(Path(args.run).parent)
    out = replay(args.run, uri, cfg.tracking.experiment)
    bad = out["malformed"] + out["rejected"]
    print(f"{args.run}: sent {out['sent']} tracking record(s)")
    if bad:
        print(f"  skipped {out['malformed']} malformed and {out['rejected']} refused record(s); "
              f"kept in {Path(args.run) / 'tracking-spool.rejected.jsonl'}")
    if out["offline"]:
        print(f"  tracking server {uri} unreachable ({out['reason']}); the rest is kept for "
              "the next replay")
        return 1
    return 0
