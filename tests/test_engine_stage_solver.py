"""Each stage trains with the solver of its MODEL.WISH.STAGE1 / STAGE2 section; the values are logged, and SOLVER
keys a config sets explicitly are reported as replaced instead of being overwritten silently."""
import logging

from wish_fixtures import tiny_cfg

from wish_d2.engine.pipeline import stage_cfg, stage_solver


def test_stage_solver_comes_from_the_stage_section(tmp_path):
    cfg = tiny_cfg(tmp_path, iters=50)
    cfg.merge_from_list(["MODEL.WISH.STAGE1.BASE_LR", "0.002", "MODEL.WISH.STAGE2.IMS_PER_BATCH", "6"])
    c1, c2 = stage_cfg(cfg, "stage1", str(tmp_path / "s1")), stage_cfg(cfg, "stage2", str(tmp_path / "s2"))
    assert (c1.SOLVER.BASE_LR, c1.SOLVER.MAX_ITER, tuple(c1.SOLVER.STEPS)) == (0.002, 50, (40,))
    assert c2.SOLVER.IMS_PER_BATCH == 6 and c2.MODEL.WISH.STAGE == "stage2"
    assert c1.SOLVER.WARMUP_ITERS == min(cfg.SOLVER.WARMUP_ITERS, 5)
    assert stage_solver(cfg, "stage2")["CHECKPOINT_PERIOD"] == 50


def test_explicit_solver_keys_are_reported(tmp_path, caplog):
    # Detectron2's setup_logger stops "wish_d2" from propagating, so listen on the module's logger itself
    log = logging.getLogger("wish_d2.engine.pipeline")
    log.addHandler(caplog.handler)
    try:
        _check_reports(tmp_path, caplog)
    finally:
        log.removeHandler(caplog.handler)


def _check_reports(tmp_path, caplog):
    cfg = tiny_cfg(tmp_path)
    with caplog.at_level(logging.INFO, logger="wish_d2.engine.pipeline"):
        stage_cfg(cfg, "stage1", str(tmp_path / "a"))
    assert "stage1 solver (from MODEL.WISH.STAGE1)" in caplog.text and "replaced" not in caplog.text
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.5"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wish_d2.engine.pipeline"):
        c = stage_cfg(cfg, "stage2", str(tmp_path / "b"))
    assert "SOLVER.BASE_LR" in caplog.text and "MODEL.WISH.STAGE2" in caplog.text
    assert c.SOLVER.BASE_LR == cfg.MODEL.WISH.STAGE2.BASE_LR
