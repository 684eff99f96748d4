"""`vislearn video data`: tools for the Something-Else box annotations and videos.

  index-boxes PART.json... --out STORE   one-time conversion to the memory-mapped box store
  merge-boxes PART.json... --out FILE     merge part files into one Something-Else JSON
  inspect --boxes FILE_OR_STORE [--json]  per-video summary and totals
  extract-frames VIDEO... --out DIR [--overwrite]   12-fps JPEG frames in the official layout
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vislearn.common.cli import Parser, command, os_error_message
from vislearn.common.errors import UserError
from vislearn.common.files import new_output_file, output_folder, refuse_input_overwrite
from vislearn.common.outputs import check_writable
from vislearn.common.text import printable


def _progress(iterable, desc: str, total: int):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="video", file=sys.stderr, leave=False)


def cmd_index_boxes(args: argparse.Namespace) -> int:
    from .box_store import index_boxes

    check_writable(Path(args.out).parent, "--out")  # the store is built beside it, then takes its place
    t0 = time.perf_counter()
    meta = index_boxes(args.parts, args.out, progress=None if args.quiet else _progress)
    print(f"wrote {args.out}: {meta['videos']} videos, {meta['frames']} annotated frames, "
          f"{meta['boxes']} boxes in {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_merge_boxes(args: argparse.Namespace) -> int:
    from .annotations import merge_annotations, save_annotations

    new_output_file(args.out, args.parts, args.overwrite)  # an existing file only with --overwrite
    merged = merge_annotations(args.parts)
    save_annotations(args.out, merged)
    print(f"wrote {args.out}: {len(merged)} videos from {len(args.parts)} files")
    return 0


def video_summary(vb) -> dict:
    """The per-video figures `inspect` reports (also used by the tests)."""
    return {
        "video_id": vb.video_id,
        "frames": int(len(vb.frame_index)),
        "boxes": int(len(vb.track)),
        "tracks": sorted(set(vb.track)),
        "hand": vb.has_hand(),
        "last_frame": int(vb.frame_index[-1]) + 1 if len(vb.frame_index) else 0,
        "empty_frames": int(len(vb.frame_index) - len(set(vb.box_frame.tolist()))),
        "issues": len(vb.issues),
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    from .box_store import open_boxes

    source = open_boxes(args.boxes)
    sizes = _frame_sizes(args.videos) if args.videos else {}
    totals = {"videos": 0, "frames": 0, "boxes": 0, "with_hand": 0, "empty_frames": 0, "repaired": 0}
    track_hist: dict[int, int] = {}
    rows = []
    for vid in source.video_ids():
        s = video_summary(source.get(vid))
        if vid in sizes:
            s["frame_size"] = sizes[vid]
        totals["videos"] += 1
        totals["frames"] += s["frames"]
        totals["boxes"] += s["boxes"]
        totals["with_hand"] += s["hand"]
        totals["empty_frames"] += s["empty_frames"]
        totals["repaired"] += s["issues"] > 0
        n_obj = len([t for t in s["tracks"] if t != "hand"])
        track_hist[n_obj] = track_hist.get(n_obj, 0) + 1
        if args.json:
            print(json.dumps(s))
        else:
            rows.append(s)
    totals["objects_per_video"] = {str(k): v for k, v in sorted(track_hist.items())}
    out = sys.stderr if args.json else sys.stdout
    if not args.json:
        print(f"{'video':>12} {'frames':>6} {'boxes':>6} {'hand':>5} {'empty':>5}  size      tracks")
        for s in rows[: args.limit] if args.limit else rows:
            size = "x".join(map(str, s.get("frame_size", ()))) or "?"
            # ids and track names come from the box file: `printable` (no terminal escapes)
            print(f"{printable(s['video_id']):>12} {s['frames']:>6} {s['boxes']:>6} {'yes' if s['hand'] else 'no':>5} "
                  f"{s['empty_frames']:>5}  {size:<9} {printable(' '.join(s['tracks']))}")
        if args.limit and len(rows) > args.limit:
            print(f"... {len(rows) - args.limit} more videos (--limit 0 shows all)")
    print(f"total: {totals['videos']} videos, {totals['frames']} annotated frames, {totals['boxes']} boxes, "
          f"{totals['with_hand']} with a hand, {totals['empty_frames']} frames without boxes, "
          f"{totals['repaired']} videos with repaired records; objects per video: {totals['objects_per_video']}",
          file=out)
    return 0


def _frame_sizes(video_root: str) -> dict[str, list[int]]:
    from vislearn.common.video import find_video, open_video

    root = Path(video_root)
    if not root.is_dir():
        raise UserError(f"{root}: {'not found' if not root.exists() else 'is a file'}; --videos expects a folder "
                        "of videos or frame folders")
    sizes = {}
    for p in sorted(root.iterdir()):
        vid = p.stem if p.is_file() else p.name
        try:
            sizes[vid] = list(open_video(find_video(root, vid)).size)
        except Exception:  # unreadable videos simply have no known size here
            continue
    return sizes


def cmd_extract_frames(args: argparse.Namespace) -> int:
    from vislearn.common.video import extract_frames, video_outputs

    root = output_folder(args.out, "--out")
    check_writable(root, "--out")
    outs = video_outputs(args.videos, root)  # <out>/<id>, id = the name without its last extension
    refuse_input_overwrite(outs.values(), args.videos, "--out")
    failed = 0
    for video, out in outs.items():
        try:
            n = extract_frames(video, out, fps=args.fps, overwrite=args.overwrite)
            print(f"{video}: {n} frames -> {out}")
        except (UserError, OSError) as e:  # one bad video must not stop the others
            msg = os_error_message(e) if isinstance(e, OSError) else str(e)
            print(f"error: {msg if msg.startswith(str(video)) else f'{video}: {msg}'}", file=sys.stderr)
            failed += 1
        except Exception as e:  # a decoder failure on this video
            print(f"error: {video}: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video data", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("index-boxes", help="convert Something-Else JSON part files into a memory-mapped box store",
                       description="One-time conversion of Something-Else box JSON files (the release's parts) into "
                                   "an indexed store folder that all data-loader workers share without parsing JSON.")
    s.add_argument("parts", nargs="+", help="Something-Else annotation JSON files (bounding_box_smthsmth_part*.json)")
    s.add_argument("--out", required=True, help="store folder to create (an existing box store is replaced; any "
                                                 "other non-empty folder is refused)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_index_boxes)

    s = sub.add_parser("merge-boxes", help="merge Something-Else JSON part files into one file")
    s.add_argument("parts", nargs="+")
    s.add_argument("--out", required=True)
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_merge_boxes)

    s = sub.add_parser("inspect", help="per-video summary of a box file or store",
                       description="Per-video summary (annotated frames, boxes, track ids, hand present, frame size "
                                   "when --videos is given) and totals. With --json: one JSON object per video on "
                                   "stdout and the totals on stderr.")
    s.add_argument("--boxes", required=True, help="Something-Else JSON file or box store folder")
    s.add_argument("--json", action="store_true", help="one JSON object per video on stdout, nothing else")
    s.add_argument("--videos", help="folder of videos or frame folders, to report frame sizes")
    s.add_argument("--limit", type=int, default=50, help="rows shown in the table (0: all; default 50)")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("extract-frames", help="write 12-fps JPEG frames (<out>/<id>/0001.jpg ...)")
    s.add_argument("videos", nargs="+")
    s.add_argument("--out", required=True, help="folder that receives one frame folder per video")
    s.add_argument("--fps", type=int, default=12)
    s.add_argument("--overwrite", action="store_true", help="replace frame folders that already exist")
    s.set_defaults(func=cmd_extract_frames)
    return p


main = command(build_parser, lambda args: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
