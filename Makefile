# webgrove: `make demo` and `make test` work on a fresh machine; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench chromium clean

setup: $(STAMP) chromium

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all]"
	touch $(STAMP)

# Debian's Chromium, installed only when we are root and no browser is present.
chromium:
	@if [ -n "$$WEBGROVE_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "warning: no chromium found; browser tests will be skipped (set WEBGROVE_CHROMIUM or apt-get install chromium)"; \
	fi

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/webgrove demo

# The browser benchmark also drives the miniwob package's Selenium env, which needs chromedriver.
bench: setup
	@if ! command -v chromedriver >/dev/null 2>&1 && [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-driver >/dev/null; \
	fi
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
