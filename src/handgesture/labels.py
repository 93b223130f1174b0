"""The label spaces: HaGRID's gesture classes and the leading-hand classes of the second head."""

from __future__ import annotations

HAGRID_TARGETS: list[str] = [
    "call", "dislike", "fist", "four", "like", "mute", "ok", "one", "palm", "peace", "rock", "stop",
    "stop_inverted", "three", "two_up", "two_up_inverted", "three2", "peace_inverted", "no_gesture",
]  # fmt: skip
NO_GESTURE = "no_gesture"
# The leading-hand head's classes, in output order.
LEADING_HANDS = ("left", "right")
HAND_INDEX = {hand: i for i, hand in enumerate(LEADING_HANDS)}
