# Sourced by .ci/run: PostgreSQL and Redis from Debian's packages, started on loopback on free
# ports, for the tests that need them (tests/python/synapse/test_e2e_workers.py). Exports
#   SERVERSHIP_TEST_POSTGRES=postgresql://postgres@127.0.0.1:PORT/postgres  (trust, loopback)
#   SERVERSHIP_TEST_REDIS=127.0.0.1:PORT
# and stops both by the PIDs it recorded (services_stop, called from .ci/run's EXIT trap).
# PostgreSQL refuses to run as root: initdb and the server run as the `postgres` user.

services_dir=
services_pg_pid=
services_redis_pid=

_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

services_start() {
    local need=()
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
    command -v redis-server >/dev/null || need+=(redis-server)
    if ((${#need[@]})); then
        echo "installing with apt-get: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null
    fi
    local pg_bin
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    services_dir=$(mktemp -d /tmp/servership-ci-services.XXXXXX)
    chown postgres "$services_dir"
    local pg_port redis_port
    pg_port=$(_free_port)
    redis_port=$(_free_port)
    runuser -u postgres -- "$pg_bin/initdb" -D "$services_dir/pg" -U postgres --auth=trust \
        -E UTF8 --locale=C >"$services_dir/initdb.log" 2>&1 </dev/null
    # fsync off: a test database, thrown away at the end.
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$services_dir/pg" -w -t 60 -l "$services_dir/pg.log" \
        -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$services_dir -c fsync=off" \
        start </dev/null >/dev/null
    services_pg_pid=$(head -1 "$services_dir/pg/postmaster.pid")
    redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --save '' \
        --appendonly no --dir "$services_dir" --pidfile "$services_dir/redis.pid" \
        --logfile "$services_dir/redis.log" </dev/null
    local i
    for i in $(seq 50); do [[ -s $services_dir/redis.pid ]] && break; sleep 0.1; done
    services_redis_pid=$(cat "$services_dir/redis.pid")
    export SERVERSHIP_TEST_POSTGRES="postgresql://postgres@127.0.0.1:$pg_port/postgres"
    export SERVERSHIP_TEST_REDIS="127.0.0.1:$redis_port"
    echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') (pid $services_pg_pid) on $pg_port," \
        "Redis $(redis-server --version | awk '{print $3}') (pid $services_redis_pid) on $redis_port"
}

_stop_pid() {  # pid, signal
    [[ -n $1 ]] || return 0
    kill "-$2" "$1" 2>/dev/null || return 0
    local i
    for i in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

services_stop() {
    _stop_pid "$services_redis_pid" TERM
    _stop_pid "$services_pg_pid" INT  # PostgreSQL's fast shutdown
    services_redis_pid= services_pg_pid=
    [[ -n $services_dir ]] && rm -rf "$services_dir"
    services_dir=
}
