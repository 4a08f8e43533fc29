"""The in-hand categories, defined once: class id 0 = left-hand object, 1 = right-hand object, 2 = both hands."""
CLASS_NAMES = ("left", "right", "both")
