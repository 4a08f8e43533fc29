"""In-hand evaluation: E-mIoU, COCO export, AP."""
from .metrics import InHandIoU, hand_side_accuracy, paint_label_map  # noqa: F401
from .coco_export import export_coco_predictions, instances_to_coco_results  # noqa: F401
from .inhand_evaluator import InHandEvaluator  # noqa: F401
