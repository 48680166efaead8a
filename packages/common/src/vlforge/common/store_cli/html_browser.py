"""`vlforge-store browse STORE --out DIR [--split S] [--limit N] [--sources A B ...] [--page-size K]`: a static HTML
caption browser (DIR/index.html; open it in any browser, no server)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("browse", help="write a static HTML page of images beside their captions",
                            description=__doc__)
    parser.add_argument("store")
    parser.add_argument("--out", required=True, help="output folder (index.html and images/)")
    parser.add_argument("--split", help="only this split (default: every split)")
    parser.add_argument("--limit", type=int, help="at most this many images (default: all)")
    parser.add_argument("--sources", nargs="+", help="only the captions of these sources (default: all)")
    parser.add_argument("--page-size", type=int, default=24, help="images per page (default 24)")
    parser.set_defaults(func=run_browse)


def run_browse(args: argparse.Namespace) -> int:
    from vlforge.common.caption_browser import write_browser

    page = write_browser(args.store, args.out, split=args.split, limit=args.limit, sources=args.sources,
                         page_size=args.page_size)
    print(f"wrote {page}")
    return 0
