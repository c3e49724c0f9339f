# fleetsim — `make help` lists the targets.
GO      ?= go
BIN     := bin/fleetsim
# Real programs the integration tests talk to; `make deps` installs them with apt-get:
# mosquitto (a real broker), and Prometheus, which scrapes two fleetsim processes so that
# every dashboard panel is proven to return data, and whose promtool lints a real scrape;
# Chromium, headless, drives the classroom view in its browser test.
TOOLS   := mosquitto mosquitto_sub mosquitto_pub mosquitto_passwd prometheus promtool chromium
PKGS    := mosquitto mosquitto-clients prometheus chromium

.PHONY: help run build test deps vet fmt-check bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: build ## run the smart-home demo on the embedded broker, with the classroom view on http://127.0.0.1:8080/ (Ctrl-C stops)
	@echo "make run: the classroom view will be on http://127.0.0.1:8080/ (fleetsim prints the address it got)"
	./$(BIN) run scenarios/smart-home.yaml

build: ## build bin/fleetsim
	$(GO) build -o $(BIN) ./cmd/fleetsim

test: deps fmt-check vet ## install test tools if missing, then vet and run every test with -race
	$(GO) test -race -count=1 -timeout 10m ./...
	@# Stack sizes mean nothing under the race detector: these run in a normal build, with
	@# goroutines starting at 2 KiB whatever the tests before them left (see README, Scale).
	GODEBUG=adaptivestackstart=0 $(GO) test -count=1 -run 'Stack|StaySmall' ./sim/runner ./sim/alarm

deps: ## install mosquitto, mosquitto-clients, prometheus and chromium when missing (apt-get, as root)
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || [ -x /usr/sbin/$$t ] || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "make deps: missing$$missing; installing $(PKGS)"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PKGS) >/dev/null && exit 0; \
	fi; \
	echo "make deps: could not install $(PKGS); install them (apt-get install $(PKGS))"; \
	if [ "$$CI" = true ]; then exit 1; fi; \
	echo "make deps: tests that need them will be skipped"

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l cmd sim devices); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet ./...

bench: deps ## benchmarks as one table: throughput and connections against a mosquitto it starts, paho's floor, the micro-benchmarks (~7 min)
	@mkdir -p bin
	@echo "make bench: about 7 minutes; raw output and every step in bin/bench.txt"
	@$(GO) test -p 1 -run '^$$' -bench . -benchmem -timeout 30m ./... > bin/bench.txt 2>&1; status=$$?; \
	awk -v raw=bin/bench.txt -f .ci/benchtable.awk bin/bench.txt; exit $$status

fuzz: ## fuzz the scenario loader and the payload decoders for 30 s each
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./sim/scenario
	$(GO) test -run '^$$' -fuzz FuzzDevicesPayload -fuzztime 30s ./devices
	$(GO) test -run '^$$' -fuzz FuzzMatch -fuzztime 30s ./sim/topic

clean: ## remove build output
	rm -rf bin
