"""`vislearn video tracking track-split`: detect -> track -> identities over every video of a split.

The output is one Something-Else box JSON (ids hand, 0000, ...), read by the training CLI, the box
store (`datasets index-boxes`) and `tracking evaluate` as ground truth is. Each video is what
`tracking track VIDEO --detector DET` writes for it.

Sharding: the split's videos (in the order of its lists, each once) are dealt round-robin to N
shards; shard K takes videos K, K+N, K+2N, ... and writes its own part file, `OUT` with
`.part<K>of<N>` before the extension; `datasets merge-boxes` (or `index-boxes`) joins the parts. K/N
come from `--shard K/N`, or from torchrun's RANK/WORLD_SIZE (one process per GPU: `torchrun
--nproc_per_node=8 -m vislearn.video.tracking track-split ...`; no process group is needed, the shards never talk).

Resuming: each finished video is appended to `<part>.partial.jsonl` (one JSON line per video, flushed);
a run started again with the same settings skips the videos there, and the part file appears, in one
step, when every video of the shard is done. Settings that differ (detector file, tracker options, the
shard's video list) stop the run with a one-line error instead of mixing results.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from vislearn.common.errors import UserError
from vislearn.common.jsonio import loads_json, read_json, write_json
from vislearn.video.data.split_layout import split_files

PARTIAL_SUFFIX = ".partial.jsonl"


def parse_shard(text: str | None) -> tuple[int, int]:
    """'K/N' -> (K, N); None -> torchrun's (RANK, WORLD_SIZE) when set, else (0, 1)."""
    if text is None:
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            where, text = "RANK/WORLD_SIZE", f"{os.environ['RANK']}/{os.environ['WORLD_SIZE']}"
        else:
            return 0, 1
    else:
        where = "--shard"
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"{where} {text!r}: expected K/N, e.g. 0/4 (shard K of N, counting from 0)") from None
    if n < 1 or not 0 <= k < n:
        raise UserError(f"{where} {text!r}: needs 0 <= K < N")
    return k, n


def part_path(out: str | os.PathLike, shard: tuple[int, int]) -> Path:
    """OUT for one shard; OUT.part<K>of<N>.json for shard K of N > 1."""
    out = Path(out)
    k, n = shard
    return out if n == 1 else out.with_name(f"{out.stem}.part{k}of{n}{out.suffix}")


STANDARD_SETS = ("train", "validation", "test")


def split_video_ids(split: str | os.PathLike, sets: list[str] | None = None) -> list[str]:
    """Ids of the split's record lists (`sets`; default its train, validation and test lists), in file
    order, each once."""
    files = split_files(split, "--split", need_labels=False)
    names = sets or [s for s in STANDARD_SETS if s in files.sets]
    if not names:
        raise UserError(f"{files.folder}: no train, validation or test list in the split folder (name others with --sets)")
    seen: dict[str, None] = {}
    for name in names:
        path = files.records(name)
        data = read_json(path)
        if not isinstance(data, list) or not all(isinstance(r, dict) and "id" in r for r in data):
            raise UserError(f"{path}: expected a JSON list of records with an 'id'")
        for r in data:
            seen.setdefault(str(r["id"]), None)
    return list(seen)


_SPACE = re.compile(r"[ \t\n\r]*")


def _object_keys(path: Path) -> list[str]:
    """The keys of the JSON object in `path` whose every value is a list (a Something-Else box JSON:
    video id -> frame records), read one value at a time (the text and one video in memory, not the
    whole parsed file); a UserError (one line) when the file is anything else."""
    not_ours = (f"{path}: exists and is not a track-split output (a JSON object of video id -> frame records); "
                "it is left as it is: choose another --out")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(not_ours) from None
    decoder = json.JSONDecoder()
    keys: list[str] = []
    try:
        i = _SPACE.match(text, 0).end()
        if text[i:i + 1] != "{":
            raise UserError(not_ours)
        i = _SPACE.match(text, i + 1).end()
        if text[i:i + 1] == "}":
            i += 1
        else:
            while True:
                key, i = decoder.raw_decode(text, i)
                i = _SPACE.match(text, i).end()
                if not isinstance(key, str) or text[i:i + 1] != ":":
                    raise UserError(not_ours)
                value, i = decoder.raw_decode(text, _SPACE.match(text, i + 1).end())
                if not isinstance(value, list):
                    raise UserError(not_ours)
                keys.append(key)
                i = _SPACE.match(text, i).end()
                if text[i:i + 1] == ",":
                    i = _SPACE.match(text, i + 1).end()
                    continue
                if text[i:i + 1] != "}":
                    raise UserError(not_ours)
                i += 1
                break
    except (json.JSONDecodeError, RecursionError):
        raise UserError(not_ours) from None
    if _SPACE.match(text, i).end() != len(text):
        raise UserError(not_ours)
    return keys


def finished_output(out: Path, videos: list[str]) -> bool:
    """Whether `out` holds this shard's finished tracks: False when there is no such file; True when it is
    a box JSON of exactly `videos` (what `track_split` writes, or a merge of its parts); otherwise a
    one-line UserError, the file untouched (an unrelated file is never taken for a finished run)."""
    if not out.exists():
        return False
    keys = _object_keys(out)
    if len(keys) != len(set(keys)) or set(keys) != set(videos):
        mine = set(videos)
        other, missing = sum(k not in mine for k in set(keys)), len(mine - set(keys))
        raise UserError(f"{out}: exists and holds the tracks of other videos than this run's ({other} of its "
                        f"{len(set(keys))} videos are not among the {len(videos)} to track, {missing} of those are "
                        "missing); it is left as it is: choose another --out, or delete it to track again")
    return True


def _fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _read_partial(path: Path, fingerprint: str) -> dict[str, list]:
    """Videos already done by an earlier run with the same settings. What a killed run was writing (a
    torn last line, or a header without its newline) is cut off the file, so appending goes on from a
    whole line."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]  # complete lines only
    lines = whole.decode("utf-8", errors="replace").split("\n")[:-1]
    if lines:
        try:
            header = loads_json(lines[0], path)  # depth-limited (vislearn.common.jsonio)
        except ValueError:
            header = {}
        if not isinstance(header, dict) or header.get("fingerprint") != fingerprint:
            raise UserError(f"{path}: left by a run with other settings (detector, tracker options, split or "
                            "shard); delete it to start over, or run with the settings it was started with")
    if len(whole) < len(data):
        os.truncate(path, len(whole))
    if not lines:  # killed before the header was complete: start afresh
        return {}
    done: dict[str, list] = {}
    for line in lines[1:]:
        try:
            row = loads_json(line, path)
        except ValueError:
            continue  # a damaged line: that video is tracked again
        done[row["video_id"]] = row["records"]
    return done


def track_split(videos: dict[str, Path], out: Path, settings: dict, track_one: Callable[[str, Path], list],
                progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Run `track_one(video_id, path) -> records` over `videos`, resumably; write `out` at the end.

    `settings` (what decides the result) guards the resume. Returns counts and timing.
    """
    fingerprint = _fingerprint({**settings, "videos": list(videos)})
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    done = _read_partial(partial, fingerprint)
    if done:
        log(f"resuming {partial}: {len(done)} of {len(videos)} video(s) already done")
    todo = [(vid, path) for vid, path in videos.items() if vid not in done]
    failed: dict[str, str] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(videos), initial=len(done), desc=f"tracking {out.name}", unit="video", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    frames = 0
    with open(partial, "a") as f:
        if f.tell() == 0:
            f.write(json.dumps({"fingerprint": fingerprint, "settings": settings}) + "\n")
            f.flush()
        for vid, path in todo:
            try:
                records = track_one(vid, path)
            except UserError as e:  # an unreadable video: reported, the others go on
                failed[vid] = str(e)
                continue
            except Exception as e:  # a decoder failure on this video
                failed[vid] = f"{path}: {type(e).__name__}: {e}"
                continue
            finally:
                if bar is not None:
                    bar.update(1)
            frames += len(records)
            f.write(json.dumps({"video_id": vid, "records": records}) + "\n")
            f.flush()
            done[vid] = records
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    result = {"videos": len(videos), "tracked": len(done), "failed": failed, "frames_this_run": frames,
              "seconds_this_run": round(seconds, 2), "frames_per_s": round(frames / max(seconds, 1e-9), 2)}
    if failed:
        return result  # the part file waits until every video is done (a rerun retries the failed ones)
    write_json(out, {vid: done[vid] for vid in videos})
    partial.unlink()
    return result


def tracker_settings(tracker_cfg, ident_cfg, detector_path: str, score_threshold: float, batch_size: int,
                     context: dict | None = None) -> dict:
    """What decides a video's tracks: the detector file (size and time stamp), the track-context model (its
    weights), tracker and identity options."""
    st = os.stat(detector_path)
    settings = {"detector": os.path.realpath(detector_path), "detector_size": st.st_size,
                "detector_mtime": st.st_mtime_ns, "score_threshold": score_threshold, "batch_size": batch_size,
                "tracker": asdict(tracker_cfg), "identities": asdict(ident_cfg)}
    if context is not None:  # absent without one, so partial runs written before the option still resume
        settings["context"] = context
    return settings
