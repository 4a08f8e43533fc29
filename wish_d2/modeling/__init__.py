"""WISH model parts. Importing this package registers them with Detectron2."""
