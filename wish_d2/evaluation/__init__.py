"""In-hand evaluation: E-mIoU, COCO export, AP."""
