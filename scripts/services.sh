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
  fi
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
