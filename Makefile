# The seed's targets, without Docker for `make run`: the local cluster runs as plain processes.
.PHONY: build run stop test test-faults sim bench clean docker-up docker-down logs

PIDFILE := data/cluster.pid
LOGFILE := data/cluster.log

build:
	npm ci
	npm run build

# Three nodes and the gateway in the background (NODES=5 make run for five); PID in data/cluster.pid.
run:
	@mkdir -p data
	@if [ -f $(PIDFILE) ] && kill -0 $$(cat $(PIDFILE)) 2>/dev/null; then echo "already running (pid $$(cat $(PIDFILE)))"; exit 0; fi
	@nohup node dist/src/cmd/local-cluster.js > $(LOGFILE) 2>&1 & echo $$! > $(PIDFILE)
	@echo "cluster starting (pid $$(cat $(PIDFILE))); logs: $(LOGFILE); gateway: http://localhost:8080"
	@for i in $$(seq 1 150); do curl -fs http://localhost:8080/health >/dev/null 2>&1 && { echo "cluster healthy"; exit 0; }; sleep 0.2; done; echo "not healthy yet; see $(LOGFILE)"

stop:
	@if [ -f $(PIDFILE) ]; then kill $$(cat $(PIDFILE)) 2>/dev/null && echo "stopping cluster (pid $$(cat $(PIDFILE)))"; rm -f $(PIDFILE); else echo "not running"; fi

logs:
	tail -f $(LOGFILE)

test:
	npm test

test-faults:
	npm run test:faults

sim:
	npm run sim -- --seeds 2000

bench:
	npm run bench

clean:
	rm -rf dist data bench/results

docker-up:
	docker compose up -d --build

docker-down:
	docker compose down
