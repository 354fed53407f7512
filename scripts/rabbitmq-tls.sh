#!/usr/bin/env bash
# A second, throwaway RabbitMQ node with a TLS listener, for the control plane's amqps tests.
# It has its own node name, ports, data directory and config, so it never disturbs the main
# broker (rabbit@localhost, 5672). Everything lives under DIR.
#
#   scripts/rabbitmq-tls.sh start DIR   # certs (openssl) + config + start; prints the settings
#   scripts/rabbitmq-tls.sh stop DIR    # stop the node (DIR is kept)
#
# In DIR/certs: ca.pem (signed the broker's cert), server.{pem,key} (CN/SAN localhost, 127.0.0.1),
# client.{pem,key} (signed by ca), wrong-ca.pem (an unrelated CA: verification must fail).
# Ports (override with env): RAMPART_TLS_PORT=5691 (amqps), RAMPART_TLS_AMQP_PORT=5692 (plain),
# RAMPART_TLS_DIST_PORT=25692 (Erlang distribution). Node: rampart-tls@localhost.
set -euo pipefail

cmd=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}
tls_port=${RAMPART_TLS_PORT:-5691}
amqp_port=${RAMPART_TLS_AMQP_PORT:-5692}
dist_port=${RAMPART_TLS_DIST_PORT:-25692}
node=${RAMPART_TLS_NODE:-rampart-tls@localhost}
rmq_bin=/usr/lib/rabbitmq/bin
[ -x "$rmq_bin/rabbitmq-server" ] || rmq_bin=$(dirname "$(command -v rabbitmq-server)")

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Run the RabbitMQ scripts directly (not the Debian wrapper, which switches to the rabbitmq user
# and drops our environment), with HOME=$dir so the node and rabbitmqctl share a private cookie.
rmq_env() {
    env HOME="$dir" \
        RABBITMQ_NODENAME="$node" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$amqp_port" \
        RABBITMQ_DIST_PORT="$dist_port" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/rabbit.pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        "$@"
}

gen_certs() {
    local c="$dir/certs"
    mkdir -p "$c"
    [ -s "$c/client.pem" ] && return 0
    local subj=/O=rampart-test
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "$subj/CN=rampart test CA" \
        -keyout "$c/ca.key" -out "$c/ca.pem" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "$subj/CN=unrelated CA" \
        -keyout "$c/wrong-ca.key" -out "$c/wrong-ca.pem" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$c/server.ext"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$c/client.ext"
    for who in server client; do
        openssl req -newkey rsa:2048 -nodes -subj "$subj/CN=${who/server/localhost}" \
            -keyout "$c/$who.key" -out "$c/$who.csr" 2>/dev/null
        openssl x509 -req -in "$c/$who.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" -CAcreateserial \
            -days 30 -extfile "$c/$who.ext" -out "$c/$who.pem" 2>/dev/null
    done
}

write_config() {
    local c="$dir/certs"
    : >"$dir/rabbitmq-env.conf"
    echo "[]." >"$dir/advanced.config"
    echo "[]." >"$dir/enabled_plugins"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$amqp_port
listeners.ssl.1 = 127.0.0.1:$tls_port
ssl_options.cacertfile = $c/ca.pem
ssl_options.certfile = $c/server.pem
ssl_options.keyfile = $c/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
EOF
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() {
    [ -s "$dir/rabbit.pid" ] && kill -0 "$(cat "$dir/rabbit.pid")" 2>/dev/null
}

# rabbitmqctl boots an Erlang VM per call (seconds on a loaded 2-core box): use the pid file
# and the listener instead.
case "$cmd" in
start)
    gen_certs
    write_config
    if ! pid_alive; then
        if port_open "$tls_port"; then
            echo "port $tls_port is taken by something else" >&2
            exit 1
        fi
        # From inside DIR: a node that fails to boot leaves erl_crash.dump in its cwd.
        (cd "$dir" && rmq_env "$rmq_bin/rabbitmq-server" -detached)
    fi
    for _ in $(seq 1 900); do
        port_open "$tls_port" && break
        sleep 0.1
    done
    port_open "$tls_port" || { echo "TLS listener did not open; see $dir/log" >&2; exit 1; }
    echo "node=$node amqps=amqps://guest:guest@localhost:$tls_port/%2f amqp=amqp://guest:guest@127.0.0.1:$amqp_port/%2f ca=$dir/certs/ca.pem"
    ;;
stop)
    if pid_alive; then
        pid=$(cat "$dir/rabbit.pid")
        kill "$pid"
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/rabbit.pid"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
