# Convenience targets; each script does its own set-up.
PLUGIN := iso_tile_stylizer

.PHONY: setup test lint sample demo zip clean
setup:
	bash scripts/setup.sh
test:
	bash scripts/test.sh
lint: setup
	$${ISOTILES_VENV:-.venv}/bin/ruff check . && $${ISOTILES_VENV:-.venv}/bin/ruff format --check .
sample: setup
	bash scripts/make_sample.sh
demo:
	bash scripts/demo.sh
# The installable plugin: one folder named iso_tile_stylizer, no tests.
zip:
	python3 scripts/build_zip.py dist/$(PLUGIN).zip
clean:
	rm -rf .build dist sample
