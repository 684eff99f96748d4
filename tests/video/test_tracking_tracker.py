"""Tracker, Kalman filter and identity assignment on hand-made sequences."""
import numpy as np
import pytest

from vislearn.video.data.annotations import parse_video
from vislearn.video.tracking.detections import HAND_CLASS, OBJECT_CLASS, VideoDetections
from vislearn.video.tracking.identities import (Identity, IdentityConfig, assign_identities, extend_ends, identities_to_records,
                                               tracks_to_records)
from vislearn.video.tracking.kalman import KalmanFilter
from vislearn.video.tracking.simulate import GreedyLinker, greedy_link
from vislearn.video.tracking.tracker import ByteTracker, Track, TrackerConfig, fill_gaps, track_video


def make_dets(num_frames, objects):
    """objects: list of (label, {frame: (box, score)})."""
    fr, bx, sc, lb = [], [], [], []
    for label, per_frame in objects:
        for f, (box, score) in per_frame.items():
            fr.append(f), bx.append(box), sc.append(score), lb.append(label)
    return VideoDetections("v", num_frames, np.array(fr, np.int32), np.array(bx, np.float32).reshape(-1, 4),
                           np.array(sc, np.float32), np.array(lb, np.int64))


def moving(x0, vx, frames, y=100.0, size=60.0, score=0.9):
    return {f: ((x0 + vx * f, y, x0 + vx * f + size, y + size), score) for f in frames}


def ids_by_frame(tracks):
    return {(t.track_id, f): b for t in tracks for f, b in zip(t.frames, t.boxes)}


def owner(tracks, frame, x_center):
    """Id of the track whose box on `frame` is centred nearest x_center."""
    best = min(((abs((b[0] + b[2]) / 2 - x_center), t.track_id) for t in tracks
                for f, b in zip(t.frames, t.boxes) if f == frame), default=(None, None))
    return best[1]


def test_kalman_learns_constant_velocity():
    kf = KalmanFilter()
    mean, cov = kf.initiate(np.array([[100.0, 50.0, 40.0, 40.0]]))
    for k in range(1, 12):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, np.array([[100.0 + 8 * k, 50.0, 40.0, 40.0]]))
    assert mean[0, 4] == pytest.approx(8.0, abs=0.5)  # x velocity learnt
    pred, _ = kf.predict(mean, cov)
    assert pred[0, 0] == pytest.approx(100 + 8 * 12, abs=1.5)
    assert np.all(np.linalg.eigvalsh(cov[0]) > 0)  # covariance stays positive definite


def test_crossing_objects_keep_their_identities():
    # A moves right, B moves left; they overlap fully on frame 15 and part again
    frames = range(30)
    det = make_dets(30, [(OBJECT_CLASS, moving(0, 10, frames)), (OBJECT_CLASS, moving(300, -10, frames))])
    tracks = track_video(det)
    assert len(tracks) == 2
    a_id = owner(tracks, 0, 30)  # A starts on the left
    b_id = owner(tracks, 0, 330)
    assert a_id != b_id
    for f in (5, 10, 20, 25, 29):
        assert owner(tracks, f, 10 * f + 30) == a_id, f"frame {f}: A changed identity"
        assert owner(tracks, f, 300 - 10 * f + 30) == b_id, f"frame {f}: B changed identity"


def test_occlusion_gap_is_bridged_and_filled():
    frames = [f for f in range(30) if not 10 <= f <= 15]  # 6 frames occluded
    det = make_dets(30, [(OBJECT_CLASS, moving(0, 5, frames))])
    tracks = track_video(det, TrackerConfig(fill_gaps=0))
    assert len(tracks) == 1 and tracks[0].frames == frames
    filled = fill_gaps(tracks, 12)[0]
    assert filled.frames == list(range(30))
    interp = dict(zip(filled.frames, filled.boxes))
    assert interp[12][0] == pytest.approx(60, abs=3)  # linear between frames 9 and 16
    assert [d for f, d in zip(filled.frames, filled.detected) if 10 <= f <= 15] == [False] * 6


def test_gap_longer_than_max_gap_ends_the_track():
    frames = [f for f in range(40) if not 5 <= f <= 24]  # 20 frames missing > max_gap 12
    det = make_dets(40, [(OBJECT_CLASS, moving(0, 0, frames))])
    tracks = track_video(det, TrackerConfig(max_gap=12, fill_gaps=0))
    assert len(tracks) == 2
    assert tracks[0].frames == list(range(5)) and tracks[1].frames == list(range(25, 40))


def test_low_score_detections_recover_an_occluded_track():
    per = moving(0, 4, range(30))
    for f in range(10, 18):  # partly occluded: detector confidence drops
        per[f] = (per[f][0], 0.3)
    det = make_dets(30, [(OBJECT_CLASS, per)])
    tracks = track_video(det, TrackerConfig(fill_gaps=0))
    assert len(tracks) == 1 and tracks[0].frames == list(range(30))
    # without the second stage (low band empty) the track loses those frames
    tracks = track_video(det, TrackerConfig(fill_gaps=0, low_score=0.5))
    assert all(f not in t.frames for t in tracks for f in range(10, 18))


def test_low_score_detections_alone_never_start_a_track():
    det = make_dets(20, [(OBJECT_CLASS, moving(0, 2, range(20), score=0.4))])
    assert track_video(det) == []


def test_hand_and_object_are_tracked_apart():
    # same place, same motion: one hand, one object; plus an object detection relabelled hand
    obj = moving(0, 3, range(20))
    hand = moving(0, 3, range(20))
    det = make_dets(20, [(OBJECT_CLASS, obj), (HAND_CLASS, hand)])
    tracks = track_video(det)
    assert sorted(t.label for t in tracks) == [HAND_CLASS, OBJECT_CLASS]
    assert all(len(t.frames) == 20 for t in tracks)
    # an object track never takes a hand detection, even where the object is missing
    obj2 = {f: v for f, v in moving(0, 3, range(20)).items() if f != 10}
    det = make_dets(20, [(OBJECT_CLASS, obj2), (HAND_CLASS, {10: ((30.0, 100.0, 90.0, 160.0), 0.95)})])
    tracks = track_video(det, TrackerConfig(fill_gaps=0))
    assert [t.label for t in tracks] == [OBJECT_CLASS] and 10 not in tracks[0].frames


def test_birth_needs_consecutive_hits_and_keeps_the_first_frames():
    det = make_dets(10, [(OBJECT_CLASS, {4: ((0.0, 0.0, 50.0, 50.0), 0.95)}),  # one-frame false positive
                         (OBJECT_CLASS, moving(200, 0, range(3, 10)))])
    tracks = track_video(det)
    assert len(tracks) == 1 and tracks[0].frames == list(range(3, 10))  # tentative frame 3 kept
    tracks = track_video(det, TrackerConfig(min_hits=1))
    assert len(tracks) == 2


def test_online_update_reports_confirmed_tracks_only():
    tr = ByteTracker()
    out = tr.update(np.array([[0, 0, 50, 50]]), np.array([0.9]), np.array([1]))
    assert out == []  # tentative
    out = tr.update(np.array([[2, 0, 52, 50]]), np.array([0.9]), np.array([1]))
    assert [t.track_id for t in out] == [1]


def test_empty_frames_and_no_detections():
    assert track_video(VideoDetections.empty("v", 25)) == []
    det = make_dets(30, [(OBJECT_CLASS, moving(0, 2, range(10, 20)))])
    tracks = track_video(det)
    assert len(tracks) == 1 and tracks[0].frames == list(range(10, 20))
    recs = identities_to_records("v", assign_identities(tracks), det.num_frames)
    assert len(recs) == 30 and recs[0]["labels"] == [] and recs[12]["labels"][0]["standard_category"] == "0000"


def test_degenerate_boxes_are_ignored():
    per = moving(0, 2, range(10))
    per[5] = ((10.0, 10.0, 10.0, 40.0), 0.9)  # zero width
    tracks = track_video(make_dets(10, [(OBJECT_CLASS, per)]), TrackerConfig(fill_gaps=0))
    assert len(tracks) == 1 and 5 not in tracks[0].frames


def test_greedy_linker_breaks_on_a_gap():
    frames = [f for f in range(20) if f != 10]
    tracks = greedy_link(make_dets(20, [(OBJECT_CLASS, moving(0, 2, frames))]))
    assert len(tracks) == 2  # no gap bridging: the floor


def test_a_second_tracker_plugs_in():
    """`track_video` takes any tracker with update (per frame) and finish; gap filling applies to its tracks."""
    frames = [f for f in range(20) if f != 10]
    det = make_dets(20, [(OBJECT_CLASS, moving(0, 2, frames))])
    plain = track_video(det, TrackerConfig(fill_gaps=0), GreedyLinker())
    assert [t.frames for t in plain] == [t.frames for t in greedy_link(det)]
    filled = track_video(det, TrackerConfig(fill_gaps=2), GreedyLinker())
    assert [t.frames for t in filled] == [t.frames for t in plain]  # two tracks: nothing to bridge inside one
    assert [len(t.frames) for t in track_video(det, TrackerConfig(fill_gaps=2))] == [20]  # ByteTracker bridges it


# ------------------------------------------------------------------------------ identities

def track(tid, label, frames, x=0.0, score=0.9):
    return Track(tid, label, list(frames), [np.array([x, 0, x + 20, 20], float) for _ in frames],
                 [score] * len(frames), [True] * len(frames), state="tracked")


def test_identity_rule_hand_objects_cap_and_order():
    tracks = [
        track(1, HAND_CLASS, range(0, 10)),
        track(2, HAND_CLASS, range(12, 30)),  # later hand fragment, stronger: becomes `hand`, 1 merged
        track(3, HAND_CLASS, range(5, 8), x=200),  # overlaps the hand in time: second hand, dropped
        track(4, OBJECT_CLASS, range(0, 30), x=100),  # strongest object -> 0000
        track(5, OBJECT_CLASS, range(0, 20), x=300),
        track(6, OBJECT_CLASS, range(0, 10), x=400, score=0.8),
        track(7, OBJECT_CLASS, range(0, 8), x=500),  # beyond max_objects=3: dropped
        track(8, OBJECT_CLASS, range(0, 2), x=600),  # too short (< 3 detections): dropped
    ]
    ids = assign_identities(tracks, IdentityConfig(max_objects=3))
    assert [i.name for i in ids] == ["hand", "0000", "0001", "0002"]
    assert sorted(ids[0].frames) == list(range(0, 10)) + list(range(12, 30))
    assert [t.track_id for t in ids[1].tracks] == [4]
    assert [t.track_id for t in ids[2].tracks] == [5]
    assert [t.track_id for t in ids[3].tracks] == [6]


def test_static_untouched_objects_are_dropped_when_another_is_in_play():
    """The Something-Else annotations box only the objects the action involves: a static object the
    hand never touches (a distractor on the table) loses its slot to one the hand reaches or moves."""
    hand = track(1, HAND_CLASS, range(0, 30), x=0)
    hand.boxes = [np.array([5.0 * f, 0, 5.0 * f + 20, 20]) for f in range(30)]  # sweeps x 0 -> 165
    touched = track(2, OBJECT_CLASS, range(0, 30), x=100, score=0.5)  # static, the hand passes over it
    moved = track(3, OBJECT_CLASS, range(0, 30), x=300, score=0.4)
    moved.boxes = [np.array([300 + 2.0 * f, 50, 320 + 2.0 * f, 70]) for f in range(30)]  # travels 58 px, box 20 px
    static = track(4, OBJECT_CLASS, range(0, 30), x=500, score=0.9)  # strongest, but far and still
    ids = assign_identities([hand, touched, moved, static])
    assert [i.name for i in ids] == ["hand", "0000", "0001"]
    assert [i.tracks[0].track_id for i in ids[1:]] == [2, 3]
    # thresholds at 0: every object counts as in play, the strongest is 0000
    off = assign_identities([hand, touched, moved, static], IdentityConfig(in_play_motion=0, in_play_contact=0))
    assert [i.tracks[0].track_id for i in off[1:]] == [4, 2, 3]
    # one test off (0): the other alone decides
    touch_only = assign_identities([hand, touched, moved, static], IdentityConfig(in_play_motion=0))
    assert [i.tracks[0].track_id for i in touch_only[1:]] == [2]
    move_only = assign_identities([hand, touched, moved, static], IdentityConfig(in_play_contact=0))
    assert [i.tracks[0].track_id for i in move_only[1:]] == [3]
    # nothing in play (no hand, nothing moves): every object stays
    alone = assign_identities([touched, static])
    assert [i.tracks[0].track_id for i in alone] == [4, 2]
    # a static object dropped does not count against max_objects
    capped = assign_identities([hand, touched, moved, static], IdentityConfig(max_objects=1))
    assert [i.tracks[0].track_id for i in capped[1:]] == [2]


def test_a_static_object_the_moved_one_ends_beside_is_kept_with_in_play_near():
    """"Putting [something] next to [something]": the reference object is static and untouched but the
    moved object comes up beside it; a distractor elsewhere stays dropped."""
    hand = track(1, HAND_CLASS, range(0, 30), x=0)
    moved = track(2, OBJECT_CLASS, range(0, 30), x=100, score=0.5)
    moved.boxes = [np.array([100 + 3.0 * f, 0, 120 + 3.0 * f, 20]) for f in range(30)]  # ends at x 187..207
    reference = track(3, OBJECT_CLASS, range(0, 30), x=215, score=0.9)  # 8 px (0.4 box sizes) from the end
    distractor = track(4, OBJECT_CLASS, range(0, 30), x=400, score=0.8)  # 193 px away at the closest
    off = assign_identities([hand, moved, reference, distractor])  # the default: off
    assert [i.tracks[0].track_id for i in off[1:]] == [2]
    near = assign_identities([hand, moved, reference, distractor], IdentityConfig(in_play_near=0.5))
    assert [i.tracks[0].track_id for i in near[1:]] == [2, 3]  # after the moved one, though stronger
    assert [i.tracks[0].track_id for i in assign_identities([hand, moved, reference, distractor],
                                                             IdentityConfig(in_play_near=0.3))[1:]] == [2]
    far = assign_identities([hand, moved, reference, distractor], IdentityConfig(in_play_near=10))
    assert [i.tracks[0].track_id for i in far[1:]] == [2, 3, 4]


def test_object_fragments_are_stitched_when_they_continue():
    tracks = [track(1, OBJECT_CLASS, range(0, 10), x=100), track(2, OBJECT_CLASS, range(16, 30), x=102),
              track(3, OBJECT_CLASS, range(16, 30), x=300)]  # far away: another object
    ids = assign_identities(tracks)
    assert [i.name for i in ids] == ["0000", "0001"]
    assert sorted(t.track_id for t in ids[0].tracks) == [1, 2]
    # too long a gap: not joined
    ids = assign_identities(tracks, IdentityConfig(stitch_gap=3))
    assert len(ids) == 3


def test_identities_are_followed_past_their_ends_through_weaker_detections():
    """The detector finds the object at 0.3 for 6 frames before it scores enough to start a track: with the
    video's detections the identity takes those frames back (and, past its end, frames still overlapping), but
    not a detection below --low-score, a detection of another class, or one on another identity's box."""
    obj = {**moving(0, 2, range(6), score=0.3), **moving(0, 2, range(6, 20)), **moving(0, 2, range(20, 26), score=0.05)}
    hand = {**moving(200, 0, range(3, 26)), 2: ((4.0, 100.0, 64.0, 160.0), 0.3)}  # frame 2: the hand on the object
    det = make_dets(26, [(OBJECT_CLASS, obj), (HAND_CLASS, hand)])
    tracks = track_video(det)
    plain = {i.name: i for i in assign_identities(tracks)}
    assert min(plain["0000"].frames) == 6 and max(plain["0000"].frames) == 19  # the tracker's own span
    idents = {i.name: i for i in assign_identities(tracks, detections=det)}
    assert sorted(idents["0000"].frames) == list(range(20))  # back to frame 0; not on through the 0.05 ones
    assert np.allclose(idents["0000"].frames[0][0], (0, 100, 60, 160)) and idents["0000"].frames[0][1] == pytest.approx(0.3)
    assert min(idents["hand"].frames) == 3  # its frame-2 box is the object's (another class, IoU 0.87), not taken
    # past the end too, and a detection on another identity's box in that frame is not taken
    a, b = Identity("0000", OBJECT_CLASS), Identity("0001", OBJECT_CLASS)
    a.add(track(1, OBJECT_CLASS, range(0, 5), x=0.0))
    b.add(track(2, OBJECT_CLASS, range(8, 10), x=8.0))  # another object where a's path goes on
    later = {f: ((2.0 * (f - 4), 0.0, 2.0 * (f - 4) + 20, 20.0), 0.3) for f in range(5, 10)}
    later[8] = ((8.0, 0.0, 28.0, 20.0), 0.3)  # frame 8: b's own box, overlapping a's frame-7 box by 0.82
    extend_ends([a, b], make_dets(10, [(OBJECT_CLASS, later)]), IdentityConfig())
    assert sorted(a.frames) == list(range(8)) and sorted(b.frames) == [8, 9]
    assert assign_identities(tracks, IdentityConfig(extend_iou=0), det)[1].frames.keys() == plain["0000"].frames.keys()


def test_identity_output_is_an_ordinary_something_else_file():
    tracks = [track(1, HAND_CLASS, range(0, 5)), track(2, OBJECT_CLASS, range(2, 8), x=100)]
    recs = identities_to_records("42", assign_identities(tracks), 10)
    vb = parse_video("42", recs)
    assert vb.track_ids() == ["hand", "0000"] and vb.num_frames == 10 and vb.issues == []
    lab = recs[3]["labels"]
    assert [(l["standard_category"], l["category"], l["gt_annotation"]) for l in lab] == [
        ("hand", "hand", "object hand"), ("0000", "object", "object 0")]
    assert all(0 <= l["score"] <= 1 for l in lab)
    from vislearn.video.data.slots import assign_tracks

    slots, dropped = assign_tracks(vb, 4)
    assert slots[:2] == ["hand", "0000"] and dropped == []
    raw = parse_video("42", tracks_to_records("42", tracks, 10))
    assert sorted(set(raw.track)) == ["h1", "o2"]
