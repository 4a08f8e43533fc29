"""The in-hand categories and the hand sides, defined once: class id 0 = left-hand object, 1 = right-hand object,
2 = both hands; side index 0 = left, 1 = right (the order of every ``[..., 2]`` hand axis)."""
CLASS_NAMES = ("left", "right", "both")
CLASS_LEFT, CLASS_RIGHT, CLASS_BOTH = range(len(CLASS_NAMES))
SIDES = ("left", "right")
