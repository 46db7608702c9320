# Two commands do all of the set-up: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_PACKAGES := libharfbuzz-subset0 poppler-utils fonts-dejavu-core
DEB_TEST_PACKAGES := chromium

.PHONY: run test deps system-deps test-system-deps node-deps catalogs extract-messages update-messages bench clean

run: deps catalogs
	$(BIN)/portal run

test: deps test-system-deps node-deps catalogs
	$(BIN)/pytest -q

deps: $(STAMP) system-deps

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

# Debian packages: installed when we are root (or have sudo); otherwise we say what to install.
system-deps:
	@sh scripts/apt-install.sh $(DEB_PACKAGES)

test-system-deps:
	@sh scripts/apt-install.sh $(DEB_TEST_PACKAGES)

# axe-core for the accessibility browser tests, pinned in package-lock.json; npm from Debian if there is none.
node-deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || sh scripts/apt-install.sh nodejs npm
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund; \
	else echo "warning: no npm: the accessibility browser tests will be skipped (install Debian's nodejs npm)" >&2; fi

# Message catalogues are compiled at install; the .po files are the source.
catalogs: deps
	@$(BIN)/pybabel -q compile -d portal/locale -D messages
	@$(BIN)/pybabel -q compile -d portal/locale -D staff
	@$(BIN)/pybabel -q compile -d labels/locale -D labels

extract-messages: deps
	$(BIN)/pybabel extract -F portal/babel.cfg -k N_ -o portal/locale/messages.pot --no-location --omit-header .
	$(BIN)/pybabel extract -F labels/babel.cfg -o labels/locale/labels.pot --no-location --omit-header .
	$(BIN)/pybabel extract -F portal/babel_staff.cfg --no-default-keywords -k _ -k ngettext:1,2 -k staff_text \
		-o portal/locale/staff.pot --no-location --omit-header .

update-messages: extract-messages
	$(BIN)/pybabel update -i portal/locale/messages.pot -d portal/locale -D messages --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel update -i labels/locale/labels.pot -d labels/locale -D labels --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel update -i portal/locale/staff.pot -d portal/locale -D staff -l sv --no-fuzzy-matching --ignore-obsolete

bench: deps catalogs
	$(BIN)/python bench/labels.py

clean:
	rm -rf $(VENV) var .pytest_cache
