"""``stackgan-bench human make|serve|score``: blinded human-rating studies."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import add_command, add_group
from harness.human.study import StudyOptions

DEFAULTS = StudyOptions(sources=[], out="")


def register(sub) -> None:
    group = add_group(sub, "human", "Blinded human-rating studies: make forms, serve them, score.")
    p = add_command(group, "make", "Write a blinded study: K images per model for random test "
                    "captions, opaque ids, per-rater orders, attention checks, an offline HTML "
                    "form and a CSV sheet per rater; the model key goes to key.json only.",
                    "stackgan-bench human make --runs runs/quick/cub-sg-256-s0 "
                    "runs/quick/cub-gan-int-cls-s0 --captions 2 --per-class --raters 10 --out study")
    p.add_argument("--runs", nargs="+", default=[], metavar="RUN_OR_SAMPLES",
                   help="run folders (sampled now) or `sample` folders (reused)")
    p.add_argument("--samples", action="append", default=[], metavar="NAME=DIR",
                   help="a samples folder written elsewhere (manifest.jsonl with caption_id and "
                   "file per image; README 'Samples from elsewhere'), under the model name NAME "
                   "(repeatable)")
    p.add_argument("--names", nargs="+", default=None, help="model names for the key and the "
                   "scores (default: the folder names)")
    p.add_argument("--captions", type=int, default=DEFAULTS.captions,
                   help="captions per test class with --per-class, else overall "
                   f"(default {DEFAULTS.captions})")
    p.add_argument("--per-class", action="store_true",
                   help="pick --captions per test class (the paper's way)")
    p.add_argument("--per-model", type=int, default=DEFAULTS.per_model,
                   help=f"images per model per caption (default {DEFAULTS.per_model}, the paper's)")
    p.add_argument("--raters", type=int, default=DEFAULTS.raters, help=f"default {DEFAULTS.raters}")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--data", default=None, help="dataset folder (default: the first run's)")
    p.add_argument("--no-ratings", action="store_true", help="ranks only, no 5-point ratings")
    p.add_argument("--no-checks", action="store_true", help="no attention checks")
    p.add_argument("--part-mb", type=float, default=DEFAULTS.part_mb,
                   help="an offline form larger than this is split into parts of at most this "
                   f"many MB that score as one rater (default {DEFAULTS.part_mb:g})")
    p.add_argument("--served-only", action="store_true",
                   help="no offline forms (the study is served with `human serve`; at the paper's "
                   "protocol the offline forms are hundreds of MB per rater)")
    p.add_argument("--out", required=True, help="new study folder")
    p.set_defaults(func=_make)

    p = add_command(group, "serve", "Serve a study to raters: one token URL per rater slot and a "
                    "recruitment link for a crowdsourcing platform (Prolific, MTurk) that assigns "
                    "free slots; answers stored in SQLite as given; an admin page and an export "
                    "URL; loopback only unless --host says otherwise.",
                    "stackgan-bench human serve study --host 0.0.0.0 --completion-url "
                    "'https://app.prolific.com/submissions/complete?cc=CODE'")
    p.add_argument("study", help="study folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--completion-url", default=None,
                   help="where a recruited participant is sent after submitting (the platform's "
                   "completion URL with its code)")
    p.add_argument("--abandon-after", type=float, default=60.0, metavar="MINUTES",
                   help="a recruited participant's slot is given to the next one after this many "
                   "minutes without activity (default 60); their answers are kept")
    p.set_defaults(func=_serve)

    p = add_command(group, "score", "Validate responses (JSON files, a server export, or filled "
                    "CSV sheets), exclude failures with the reason, and report the average human "
                    "rank per model with bootstrap CIs and rater agreement; logged to MLflow.",
                    "stackgan-bench human score study responses/*.json")
    p.add_argument("study", help="study folder")
    p.add_argument("responses", nargs="+", help="response files")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=_score)


def _make(args) -> int:
    from harness.errors import UserError
    from harness.human.study import make_study

    sources, names = list(args.runs), list(args.names or [Path(r).resolve().name for r in args.runs])
    if args.names and len(args.names) != len(args.runs):
        raise UserError("--names gives one name per --runs folder (--samples carry their own)")
    for item in args.samples:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--samples {item!r}: expected NAME=DIR")
        sources.append(folder)
        names.append(name)
    out = make_study(StudyOptions(
        sources=sources, out=args.out, captions=args.captions, per_class=args.per_class,
        per_model=args.per_model, raters=args.raters, seed=args.seed, names=names,
        data=args.data, ratings=not args.no_ratings, attention_checks=not args.no_checks,
        part_mb=args.part_mb, offline_forms=not args.served_only))
    print(f"study {out['study_id']}: {out['items']} descriptions + {out['checks']} checks, "
          f"{len(out['models'])} models, {out['raters']} raters -> {out['out']}")
    if out["form_parts"]:
        print(f"offline forms: {out['form_bytes'] / 1e6:.1f} MB in all, {out['form_parts']} "
              f"file(s), the largest {out['largest_form_bytes'] / 1e6:.1f} MB")
        print(f"hand out {out['out']}/share/<rater>/form*.html (or sheet.csv with share/images), "
              f"or serve it (`human serve {out['out']}`); keep {out['out']}/key.json to yourself")
    else:
        print(f"serve it with `human serve {out['out']}`; keep {out['out']}/key.json to yourself")
    return 0


def _serve(args) -> int:
    from harness.human.server import StudyServer, is_loopback

    server = StudyServer(args.study, args.host, args.port, completion_url=args.completion_url,
                         abandon_after_s=args.abandon_after * 60)
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}: anyone who can reach it and has a token can rate")
    for rater in server.tokens:
        print(f"{rater}: {server.rater_url(rater)}")
    print(f"recruitment link (Prolific; MTurk: ?workerId=…&assignmentId=…&hitId=…): "
          f"{server.prolific_url()}")
    print(f"admin: {server.admin_url()}")
    print(f"export: {server.export_url()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def _score(args) -> int:
    from harness.human.score_study import score_study

    result = score_study(args.study, args.responses, args.bootstrap, args.seed,
                         track=not args.no_tracking)
    for item in result["excluded"]:
        print(f"excluded {item['source']}: {item['reason']}")
    print((Path(args.study) / "scores" / "score.md").read_text(), end="")
    return 0 if result["models"] else 1
