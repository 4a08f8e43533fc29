# One command to test, one to run the main job. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wish-setup-done
OUTPUT ?= output

.PHONY: setup test demo clean

setup: $(STAMP)

# Re-runs only when the dependency declarations change; a second `make setup` is a no-op.
$(STAMP): setup.py tools/install_detectron2.sh Makefile
	@test -x $(PY) || bash tools/check_disk.sh . 6  # a fresh venv needs ~6 GB
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "pip==23.2.1" "setuptools<81" wheel  # newer pip rejects the Detectron2 sdist metadata
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	PYTHON=$(PY) bash tools/install_detectron2.sh
	$(PY) -m pip install -q -e ".[dev,gsam]"
	$(PY) -c "import wish_d2; print('wish_d2 ready')"
	touch $(STAMP)

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
test: setup
	$(PY) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

demo: setup
	$(PY) tools/reproduce_table.py --config-file configs/wish_synthetic.yaml --output-dir $(OUTPUT)/demo

clean:
	rm -rf $(VENV) build *.egg-info
