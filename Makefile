# Two commands for a newcomer: `make run` (set up, start eom on embedded services, run the
# seed mission) and `make test` (linter, type checker, tests against the real services).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test first-hour lint typecheck catalogues clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("eom needs Python 3.11 or newer, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/eom up --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# pytest exits 5 when it collects no test; say so plainly rather than fail on it. Two
# workers: the browser tests on one, the rest in file order on the other (tests/conftest.py).
test: lint typecheck
	@$(BIN)/pytest -n 2 --dist loadgroup; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# The README's first hour (eom up in the background, the demo, what to look at next), run
# as written in a fresh data directory; part of `make test` too.
first-hour: install
	$(BIN)/pytest -m first_hour

# The console's gettext catalogues: messages extracted from its code and templates, merged
# into the Russian and Turkish catalogues (translators then fill what is new).
catalogues: install
	$(BIN)/pybabel extract -F console/babel.cfg -k _ -k gettext -k ngettext:1,2 \
		--no-location --sort-output --project eom -o console/catalogues/messages.pot .
	for language in ru tr; do \
		if [ -f console/catalogues/$$language/LC_MESSAGES/messages.po ]; then \
			$(BIN)/pybabel update --no-fuzzy-matching -i console/catalogues/messages.pot \
				-d console/catalogues -l $$language; \
		else \
			$(BIN)/pybabel init -i console/catalogues/messages.pot -d console/catalogues -l $$language; \
		fi; \
	done

clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
