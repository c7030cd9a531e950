# Convenience targets; each script does its own set-up.
PLUGIN := iso_tile_stylizer
PLUGIN_FILES := metadata.txt __init__.py icon.svg resources.qrc README.md LICENSE iso_qgis processing ui

.PHONY: setup test lint sample demo zip clean
setup:
	bash scripts/setup.sh
test:
	bash scripts/test.sh
lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
sample: setup
	bash scripts/make_sample.sh
demo:
	bash scripts/demo.sh
# The installable plugin: one folder named $(PLUGIN), no tests inside.
zip:
	rm -rf .build/zip dist/$(PLUGIN).zip && mkdir -p .build/zip/$(PLUGIN) dist
	cp -r $(wildcard $(PLUGIN_FILES)) .build/zip/$(PLUGIN)/
	find .build/zip -name __pycache__ -prune -exec rm -rf {} +
	cd .build/zip && python3 -m zipfile -c ../../dist/$(PLUGIN).zip $(PLUGIN)
	@echo "dist/$(PLUGIN).zip"
clean:
	rm -rf .build dist sample
