# SPDX-License-Identifier: MIT
# Front door for newcomers and CI. Every target installs what is missing
# first (scripts/install-deps), then drives CMake presets.
#   make run    build the service (preset run) and start it on 127.0.0.1:8080;
#               installs only what building and running it needs
#   make run-cluster  the same build, then six Redis Cluster nodes, PostgreSQL,
#               two instances and nginx in front on 127.0.0.1 (docs/deploy.md);
#               CHECK=1 runs the smoke check through nginx and stops
#   make test   build with ASan+UBSan, run every test; then TSan concurrency tests
#               (the service included); fails on a skipped test unless
#               UC_TEST_ALLOW_SKIP=1
#   make bench  benchmarks with side-by-side reference runs
#   make bench-near  the near cache's hit path beside the memory backend's get
#   make bench-cluster  GET/SET on a 3-primary Redis Cluster of its own beside
#               redis-benchmark --cluster (about 40 s); BENCH_CLUSTER_ARGS=
#               passes flags, e.g. "--requests 1000000" for a longer run
#   make bench-api  utxoiq-api against nginx and a minimal MHD+hiredis server
#   make bench-stampede  stampede control on PostgreSQL: queries per cold
#               entry across two instances, a hot entry expiring under load
#   make bench-write  POST /api/v1/feedback/rate; BEFORE_BIN=<old utxoiq-api> compares
#   make bench-policy  near-cache eviction policies replayed on synthetic
#               traces (1-2 minutes); QUICK=1 for the short run (seconds)
#   make simulate  utxoiq-api under a Zipf mix with no cache, Redis only and
#               near + Redis (docs/simulate.md, about 6 minutes); SIM_ARGS=
#               passes flags, e.g. "--db pg" or "--duration 20"
#   make faults the long service fault runs (release build); prints FIGURE lines
#   make faults-cluster  a Redis Cluster primary SIGKILLed under wrk through
#               nginx and two instances (scripts/cluster-failover, about 45 s)
#   make valgrind  integration tests (and the service they start) under memcheck
#   make soak   the service under load while Redis restarts; RSS and fds
#   make profile-hit  instructions and system calls per cached hit, against
#               the minimal MHD+hiredis server (docs/benchmarks.md)
#   make install PREFIX=/usr/local  library, headers, pkg-config and CMake
#               files, CLI, service, man pages, systemd unit (docs/operations.md)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=

.PHONY: all deps deps-run release asan tsan test test-asan test-tsan run run-cluster bench bench-near bench-cluster bench-api bench-stampede bench-write bench-policy simulate clean install fuzz faults faults-cluster valgrind soak profile-hit

all: release

deps:
	@scripts/install-deps

deps-run:
	@scripts/install-deps run

release: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j $(JOBS)

asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build/asan -j $(JOBS)

tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build build/tsan -j $(JOBS)

test: test-asan test-tsan

# ctest counts a skipped test as no failure; scripts/ctest-verdict reads the
# JUnit file (with each test's whole output) and fails the run on a skip
# unless UC_TEST_ALLOW_SKIP=1. The TSan pass includes the service suites,
# whose utxoiq-api children are the TSan build and stop at the first report.
CTEST_JUNIT = --output-junit junit.xml --test-output-size-passed 4194304 \
	--test-output-size-failed 4194304

test-asan: asan
	cd build/asan && ctest --output-on-failure -j $(JOBS) -LE faults $(CTEST_JUNIT) $(CTEST_ARGS)
	@scripts/ctest-verdict build/asan/junit.xml

test-tsan: tsan
	cd build/tsan && ctest --output-on-failure -L concurrency $(CTEST_JUNIT) $(CTEST_ARGS)
	@scripts/ctest-verdict build/tsan/junit.xml

# Long fault runs (label `faults`, excluded from `make test`), one at a time
# so that their figures are not skewed by each other; see docs/reliability.md.
faults: release
	cd build/release && ctest --output-on-failure -V -L faults $(CTEST_ARGS)

# The cluster failover run alone (also the `faults` test
# faults_cluster_failover); builds only the service. FAILOVER_* settings
# reach the script (scripts/cluster-failover --help).
faults-cluster: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j $(JOBS) --target utxoiq-api
	@UTXOIQ_BIN=build/release/src/server/utxoiq-api scripts/cluster-failover

# The run preset (build/run) has no tests and no benchmarks, so it needs
# none of their packages (install-deps run) and the first start does not
# wait for them to compile.
run: deps-run
	@cmake --preset run >/dev/null
	@cmake --build build/run -j $(JOBS) --target utxoiq-api
	@UTXOIQ_BIN=build/run/src/server/utxoiq-api scripts/run-service

# The scale-out topology of docs/deploy.md, built like `run`; install-deps
# cluster adds Redis, PostgreSQL and nginx to what `run` installs.
run-cluster:
	@scripts/install-deps cluster
	@cmake --preset run >/dev/null
	@cmake --build build/run -j $(JOBS) --target utxoiq-api
	@UTXOIQ_BIN=build/run/src/server/utxoiq-api scripts/run-cluster $(if $(filter 1,$(CHECK)),--check,)

bench: release
	@build/release/bench/uc-bench

# Builds its one program only (release preset), not the whole tree.
bench-near: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j $(JOBS) --target uc-near-bench
	@build/release/bench/uc-near-bench

# Its one program only, like bench-near; redis-benchmark and redis-cli come
# with redis-tools (install-deps).
BENCH_CLUSTER_ARGS ?=
bench-cluster: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j $(JOBS) --target uc-cluster-bench
	@build/release/bench/uc-cluster-bench $(BENCH_CLUSTER_ARGS)

bench-api: release
	@bench/api-bench

bench-stampede: release
	@bench/stampede-bench

bench-write: release
	@bench/write-bench

# The simulator needs only the compiler and libm, so only its target is
# built; configuring the preset still wants the project's packages.
bench-policy: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j $(JOBS) --target uc-policy-sim
	@build/release/bench/uc-policy-sim $(if $(filter 1,$(QUICK)),--quick,)

# The workload simulator and the service only (release preset); it starts
# its own Redis, database and service. The report goes to
# build/release/simulate/report.html.
SIM_ARGS ?=
simulate: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j $(JOBS) --target uc-simulate utxoiq-api
	@build/release/bench/uc-simulate $(SIM_ARGS)

# callgrind and strace on a fixed number of identical cached GETs.
profile-hit: release
	@scripts/profile-hit

fuzz: deps
	@scripts/fuzz

# Non-sanitized build (preset `valgrind`); see docs/operations.md.
valgrind: deps
	@scripts/valgrind-tests

soak: deps
	@scripts/soak

# The library (shared and static), headers, pkg-config file, CMake package,
# CLI, service, man pages and systemd unit, from the run preset: installing
# needs neither the tests nor their packages.
install: deps-run
	@cmake --preset run >/dev/null
	@cmake --build build/run -j $(JOBS)
	cmake --install build/run $(if $(PREFIX),--prefix $(PREFIX),)

clean:
	rm -rf build
