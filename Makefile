# Convenience targets; each script does its own set-up.
PLUGIN := iso_tile_stylizer

.PHONY: setup test lint sample demo zip zip-dev repo-check clean
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
# The installable plugin: one folder named iso_tile_stylizer, no tests. `zip` is a release and refuses the
# placeholder email and links in pyproject.toml; `zip-dev` builds with them (not for upload).
zip:
	python3 scripts/build_zip.py --release dist/$(PLUGIN).zip
zip-dev:
	python3 scripts/build_zip.py dist/$(PLUGIN).zip
# The plugin repository's upload checks on a development ZIP: its validator's offline rules, Bandit with its rules.
repo-check: setup
	$${ISOTILES_VENV:-.venv}/bin/python scripts/plugin_repo_check.py
clean:
	rm -rf .build dist sample
