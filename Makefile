# Every target bootstraps .venv from the pinned dependencies in pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/default.toml
# Debian packages the tests need: a C compiler (a route rule's C predicate is compiled and called);
# AArch64 kernels are verified under emulation (cross GCC to link, qemu-user to run); GEMMs are timed against BLIS (serial and pthread builds) and NumPy's OpenBLAS;
# the HTML report is rendered in headless Chromium; shared sweeps are tested on a throwaway PostgreSQL cluster.
SYSTEM_PACKAGES := gcc gcc-aarch64-linux-gnu qemu-user libblis4-serial libblis4-pthread chromium postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# SME kernels are verified under a qemu-aarch64 of version 9 or later (7.2, Debian 12's, computes SMOPA wrongly):
# the system's when it is recent enough, else Debian 13's static one, fetched into the venv.
QEMU_AARCH64 := $(BIN)/qemu-aarch64

.PHONY: run test check test-avx2 ci-sweep venv system-packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)

system-packages:
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
		echo "installing $(SYSTEM_PACKAGES) (emulated AArch64 verification, the BLIS baselines, the browser test, the PostgreSQL server)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

run: $(STAMP)
	$(BIN)/ukl run $(CONFIG)

$(QEMU_AARCH64): runner/emulation/fetch_qemu.sh | $(STAMP) system-packages
	sh runner/emulation/fetch_qemu.sh $@

test: $(STAMP) system-packages $(QEMU_AARCH64)
	$(BIN)/pytest -q

# The quick tier while developing: everything but slow, timing-sensitive and emulated tests
# (markers in pyproject.toml). `make test` and CI run the whole suite.
check: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not timing and not emulation"

# The suite as an AVX2-only host runs it: the detected host ISA is capped (no AVX-512, AMX, AVX10),
# so an AVX-512 machine checks that nothing it changes breaks the other kind. .ci/run does this.
test-avx2: $(STAMP) system-packages $(QEMU_AARCH64)
	UKL_HOST_ISA=avx2 $(BIN)/pytest -q

# The CI sweep: fails on any wrong_answer or crash; writes a Markdown summary next to its database.
ci-sweep: $(STAMP)
	$(BIN)/ukl sweep experiments/ci_smoke.toml --db results/ci_smoke.sqlite --markdown results/ci_smoke.md
	@if [ -n "$$GITHUB_STEP_SUMMARY" ]; then cat results/ci_smoke.md >> "$$GITHUB_STEP_SUMMARY"; fi

clean:
	rm -rf $(VENV) results .pytest_cache
