"""``zoo push`` and ``zoo download``: publish runs to the Hugging Face Hub and pre-fetch pinned weights."""
from __future__ import annotations

import argparse

import yaml


def cmd_push(args: argparse.Namespace) -> None:
    from zoo.hub.publish import push

    result = push(args.run_dir, args.repo, private=args.private, revision=args.revision,
                  create_pr=args.create_pr, token=args.token, commit_message=args.message)
    if args.json:
        import json

        print(json.dumps(result, indent=2, default=str))
        return
    where = result["pr_revision"] or result["revision"]
    print(f"pushed {args.run_dir} to {result['repo_id']}@{where}: commit {result['commit']}")
    print(f"  {result['commit_url']}")
    if result["pr_url"]:
        print(f"  pull request: {result['pr_url']}")
    for name, sha in sorted(result["files"].items()):
        print(f"  {name}  sha256 {sha}")
    print(f"load it with zoo.load('hf://{result['repo_id']}@{result['commit']}'), or pin it in a card:")
    print("\n".join("  " + line for line in
                    yaml.safe_dump({"weights": result["weights"]}, sort_keys=False).splitlines()))


def cmd_download(args: argparse.Namespace) -> None:
    from zoo.loading import download

    result = download(args.name, revision=args.revision, weights=args.weights)
    if args.json:
        import json

        print(json.dumps(result, indent=2, default=str))
        return
    if result.get("source") == "packaged":
        print(f"{args.name}: weights packaged with latent-zoo (nothing to download; sha256 checked)")
    else:
        print(f"{result['repo']}@{result['revision']}")
    for path in result["path"] if isinstance(result["path"], list) else [result["path"]]:
        print(f"  {path}")
    for name in result["files"]:
        print(f"  {name}")


def add_push(sub) -> None:
    p = sub.add_parser("push", help="publish a trained run (safetensors, config, model card) to a Hub repo")
    p.add_argument("run_dir", help="run folder written by `zoo train`")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="Hub model repo (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created from main if missing)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--token", help="Hub write token (default: HF_TOKEN or the one `hf auth login` stored)")
    p.add_argument("--message", help="commit message")
    p.add_argument("--json", action="store_true", help="print the result (commit, files and sha256s) as JSON")
    p.set_defaults(func=cmd_push)


def add_download(sub) -> None:
    p = sub.add_parser("download", help="pre-fetch a model's weights into the Hugging Face cache (for offline use)")
    p.add_argument("name", help="model name with published weights, ORG/NAME or hf://ORG/NAME@REV")
    p.add_argument("--revision", help="branch, tag or commit (default: the card's pinned revision, or main)")
    p.add_argument("--weights", help="weights file of a Hub repo (default: model.safetensors)")
    p.add_argument("--json", action="store_true", help="print the result (repo, commit, path, files) as JSON")
    p.add_argument("--quiet", action="store_true", help="no download progress bars")
    p.set_defaults(func=cmd_download)
