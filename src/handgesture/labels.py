"""The label spaces: HaGRID's gesture classes (v1 and v2) and the leading-hand classes of the second head."""

from __future__ import annotations

# HaGRID v1 (the classifier's default targets): 18 gestures and no_gesture.
HAGRID_TARGETS: list[str] = [
    "call", "dislike", "fist", "four", "like", "mute", "ok", "one", "palm", "peace", "rock", "stop",
    "stop_inverted", "three", "two_up", "two_up_inverted", "three2", "peace_inverted", "no_gesture",
]  # fmt: skip
# HaGRID v2 (the current release, hukenovs/hagrid configs/*.yaml): 33 gestures and no_gesture.
HAGRID_V2_TARGETS: list[str] = [
    "grabbing", "grip", "holy", "point", "call", "three3", "timeout", "xsign", "hand_heart", "hand_heart2",
    "little_finger", "middle_finger", "take_picture", "dislike", "fist", "four", "like", "mute", "ok", "one",
    "palm", "peace", "peace_inverted", "rock", "stop", "stop_inverted", "three", "three2", "two_up",
    "two_up_inverted", "three_gun", "thumb_index", "thumb_index2", "no_gesture",
]  # fmt: skip
NO_GESTURE = "no_gesture"
# The leading-hand head's classes in output order, HaGRID's: {"right": 0, "left": 1}.
LEADING_HANDS = ("right", "left")
HAND_INDEX = {hand: i for i, hand in enumerate(LEADING_HANDS)}
UNKNOWN_HAND = -1  # HaGRID v2 has no leading hand: the head's loss and metrics skip such samples
