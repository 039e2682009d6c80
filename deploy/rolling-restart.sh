#!/bin/sh
# Restart every member of a live cluster, one by one, without downtime: followers first, the leader
# last (leadership is transferred away before it stops); after each start, wait until the node is
# healthy and caught up before the next. Stop and start are your commands: {id}, {peerAddr} and
# {httpAddr} are filled in per node.
#
#   deploy/rolling-restart.sh --endpoints 10.0.0.1:8081,10.0.0.2:8081,10.0.0.3:8081 \
#     --stop-cmd 'ssh node{id} sudo systemctl stop raft-node' \
#     --start-cmd 'ssh node{id} sudo systemctl start raft-node'
#
#   deploy/rolling-restart.sh --endpoints localhost:8080 \
#     --stop-cmd 'docker compose stop node{id}' --start-cmd 'docker compose start node{id}'
#
# Exit codes: 0 done; 2 usage; 3 the cluster was unhealthy or a node did not come back in time (the
# script stops there and leaves the remaining nodes untouched).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec node "$here/../dist/src/cmd/rolling-restart.js" "$@"
