# Sourced by scripts/setup: make sure PostgreSQL and RabbitMQ answer, starting them if not.

wait_for_port() {  # host port seconds
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}

ensure_postgres() {
  if ! wait_for_port 127.0.0.1 5432 1; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    wait_for_port 127.0.0.1 5432 60 || { echo "PostgreSQL did not start" >&2; exit 1; }
  fi
}

ensure_rabbitmq() {
  if ! wait_for_port 127.0.0.1 5672 1; then
    echo "RabbitMQ is not answering on 127.0.0.1:5672; starting it" >&2
    # The node may be up with its application stopped (e.g. after an interrupted fault test).
    if rabbitmqctl -q status >/dev/null 2>&1; then
      rabbitmqctl -q start_app
    else
      start_rabbitmq
    fi
    rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || true
    wait_for_port 127.0.0.1 5672 120 || { echo "RabbitMQ did not start" >&2; exit 1; }
  elif [ "$(rabbitmq_fd_limit)" -lt 8192 ] && [ "$(id -u)" -eq 0 ]; then
    # Started by the system with too few file descriptors for the suite's vhosts (see start_rabbitmq):
    # restart it once with the raised limit.
    echo "RabbitMQ runs with $(rabbitmq_fd_limit) file descriptors; restarting it with more" >&2
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    start_rabbitmq
    rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || true
    wait_for_port 127.0.0.1 5672 120 || { echo "RabbitMQ did not start" >&2; exit 1; }
  fi
}

rabbitmq_fd_limit() {  # prints the running node's file-descriptor limit (a large number if it cannot tell)
  rabbitmqctl status --formatter json 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["file_descriptors"]["total_limit"])' 2>/dev/null \
    || echo 1000000
}

start_rabbitmq() {
  # Each quorum queue keeps files open, and Debian starts RabbitMQ (through su) with 1,024 descriptors:
  # a few test vhosts at once exhaust them and the broker stops accepting connections. Raise the limit.
  if [ "$(id -u)" -eq 0 ] && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && id rabbitmq >/dev/null 2>&1; then
    su rabbitmq -s /bin/sh -c 'ulimit -n "$(ulimit -Hn)"; cd /var/lib/rabbitmq && /usr/lib/rabbitmq/bin/rabbitmq-server -detached'
  else
    rabbitmq-server -detached
  fi
}
