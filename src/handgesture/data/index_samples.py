"""The index's samples: one per (box, label) of an image, or one per image (the whole frame), and the tally of
what reading skipped. Shared by the readers of plain folders (`annotations`, `index_plain`) and of archives
and S3 (`source_annotations`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from handgesture.data.full_frames import WHOLE_FRAME, full_frame_label
from handgesture.labels import HAGRID_TARGETS, HAGRID_V2_TARGETS, NO_GESTURE, UNKNOWN_HAND

KNOWN_LABELS = frozenset(HAGRID_TARGETS) | frozenset(HAGRID_V2_TARGETS)


class Sample(msgspec.Struct, frozen=True, gc=False):
    """One training sample. A C struct (v2 has 1.5 M): built, hashed and compared without Python code, 56
    bytes, and never walked by the garbage collector (it holds no containers that could form a cycle)."""

    image: str  # absolute path to the jpg
    box: tuple[float, float, float, float]  # normalised x, y, w, h; top-left origin
    gesture: int  # index into the targets list
    leading_hand: int  # labels.HAND_INDEX (right = 0, left = 1); UNKNOWN_HAND (-1) in HaGRID v2
    user_id: str


@dataclass
class Tally:
    """What reading skipped, for the log and for the run's summary."""

    missing: int = 0
    bad_boxes: Counter = field(default_factory=Counter)  # annotation file -> boxes outside their frame
    unknown_labels: Counter = field(default_factory=Counter)  # label -> boxes
    no_gesture_only: int = 0  # full frame: images outside the no_gesture folder with no gesture in them
    untargeted: Counter = field(default_factory=Counter)  # full frame: an image's label -> images, no target

    def merge(self, later: Tally) -> None:
        """Add what ``later`` tallied over the files read after this one's: the counters then hold what one
        tally over all the files would, in the same order (a label first seen later comes after)."""
        self.missing += later.missing
        self.bad_boxes.update(later.bad_boxes)
        self.unknown_labels.update(later.unknown_labels)
        self.no_gesture_only += later.no_gesture_only
        self.untargeted.update(later.untargeted)

    def notes(self, missing_targets: list[str], ann_dir: Path) -> list[str]:
        notes = []
        if missing_targets:
            notes.append(f"no annotation file for targets {missing_targets} in {ann_dir}")
        if self.bad_boxes:
            files = ", ".join(f"{Path(f).name}: {n}" for f, n in sorted(self.bad_boxes.items()))
            notes.append(
                f"{sum(self.bad_boxes.values())} boxes outside their frame or empty, skipped ({files})"
            )
        if self.unknown_labels:
            labels = ", ".join(f"{label!r}: {n}" for label, n in sorted(self.unknown_labels.items()))
            notes.append(f"boxes with unknown labels (no target, no HaGRID class), skipped: {labels}")
        if self.no_gesture_only:
            notes.append(
                f"{self.no_gesture_only} images outside the no_gesture folder with only no_gesture hands, "
                "dropped (HaGRID v2's full-frame rule)"
            )
        if self.untargeted:
            labels = ", ".join(f"{label!r}: {n}" for label, n in sorted(self.untargeted.items()))
            notes.append(f"images whose full-frame label is not a target, skipped: {labels}")
        return notes


def inside_frame(box: tuple[float, float, float, float]) -> bool:
    """A box with some area inside the [0, 1] x [0, 1] frame (a box wholly outside would crop black)."""
    x, y, w, h = box
    return w > 0 and h > 0 and x < 1 and y < 1 and x + w > 0 and y + h > 0


def box_samples(image: str, pairs, hand: int, user: str, index: dict[str, int], tally: Tally, where: str):
    """One sample per (box, label) whose label is a target; other labels are left out (and counted when
    they are no class HaGRID knows either). A no_gesture box is the hand that is not the leading one."""
    samples = []
    for box, label in pairs:
        if label not in index:
            if label not in KNOWN_LABELS:
                tally.unknown_labels[label] += 1
        elif not inside_frame(box):
            tally.bad_boxes[where] += 1
        else:
            own = 1 - hand if label == NO_GESTURE and hand != UNKNOWN_HAND else hand
            samples.append(Sample(image, box, index[label], own, user))
    return samples


def frame_sample(image: str, folder: str, labels, user: str, index: dict[str, int], tally: Tally) -> list:
    """The image (a path or locator) as one sample (the whole frame), labelled by v2's rule; none when the
    rule drops it or its label is not a target. `folder` is the image's gesture folder (no_gesture's own
    labels its images)."""
    label = full_frame_label(labels, folder)
    if label is None:
        tally.no_gesture_only += 1
        return []
    if label not in index:
        tally.untargeted[label] += 1
        return []
    return [Sample(image, WHOLE_FRAME, index[label], UNKNOWN_HAND, user)]
