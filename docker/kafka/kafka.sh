#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, broker+controller in one JVM) on 127.0.0.1, no Docker.
#
#   kafka.sh up      resolve the jars once, format storage once, start, wait, print the address
#   kafka.sh down    SIGTERM, wait for a clean exit (SIGKILL only after KAFKA_STOP_TIMEOUT s)
#   kafka.sh logs    follow the broker log
#   kafka.sh status  print the bootstrap address and exit 0 if the broker is up, else exit 1
#   kafka.sh clean   stop and delete the broker's data
#   kafka.sh resolve resolve the jars only
#
# Environment:
#   KAFKA_BOOTSTRAP_SERVERS  an existing cluster: nothing local is started, the address is echoed
#   KAFKA_RUN_DIR            state folder (default docker/.kafka-run): config, data, log, pid
#   KAFKA_LIB_DIR            jar cache (default docker/.kafka-lib), filled from docker/kafka/pom.xml
#   KAFKA_HEAP_OPTS          JVM heap (default -Xms256m -Xmx768m)
#   KAFKA_START_TIMEOUT      seconds to wait for the broker to accept connections (default 90)
#   KAFKA_STOP_TIMEOUT       seconds to wait for a clean stop before SIGKILL (default 60)
#   KAFKA_LOCAL_SECURITY     plaintext (default) or sasl_ssl: the client listener is SASL_SSL
#                            (SASL/PLAIN over TLS). A CA, a broker certificate (PKCS12, keytool)
#                            and a user with a random password are generated at start in
#                            $run_dir/tls; $run_dir/client.env holds the client settings
#                            (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_CAFILE).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
docker_dir="$(dirname "$here")"
run_dir="${KAFKA_RUN_DIR:-$docker_dir/.kafka-run}"
lib_dir="${KAFKA_LIB_DIR:-$docker_dir/.kafka-lib}"
pid_file="$run_dir/kafka.pid"
addr_file="$run_dir/bootstrap"
props="$run_dir/server.properties"
log_file="$run_dir/server.log"
start_timeout="${KAFKA_START_TIMEOUT:-90}"
stop_timeout="${KAFKA_STOP_TIMEOUT:-60}"
security="$(echo "${KAFKA_LOCAL_SECURITY:-plaintext}" | tr '[:upper:]' '[:lower:]')"
case "$security" in plaintext|sasl_ssl) ;; *)
  echo "kafka: KAFKA_LOCAL_SECURITY must be plaintext or sasl_ssl, got '$security'" >&2; exit 2 ;;
esac

say() { echo "kafka: $*" >&2; }

resolve_jars() {
  if [ -f "$lib_dir/.resolved" ] && cmp -s "$here/pom.xml" "$lib_dir/.resolved"; then
    return
  fi
  command -v mvn >/dev/null || { say "Maven (mvn) is needed to resolve the broker jars"; exit 1; }
  say "resolving Apache Kafka jars from Maven Central into $lib_dir (once)"
  rm -rf "$lib_dir"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$lib_dir" -DincludeScope=runtime >&2
  cp "$here/pom.xml" "$lib_dir/.resolved"
}

java_args() {
  # shellcheck disable=SC2206
  local heap=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m})
  JAVA_ARGS=(java "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$here/log4j2.yaml" -Dkafka.logs.dir="$run_dir"
    -cp "$lib_dir/*")
}

java_cmd() { java_args; "${JAVA_ARGS[@]}" "$@"; }

alive() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

prop() { sed -n "s/^$1=//p" "$props"; }

client_port() { prop advertised.listeners | sed -E 's/.*:([0-9]+)$/\1/'; }

# A throwaway CA, a broker certificate for 127.0.0.1/localhost signed by it (in a PKCS12
# keystore made with keytool) and one SASL/PLAIN user: all random, all under $run_dir/tls.
make_tls() {
  local tls="$run_dir/tls" pass user_pass
  rm -rf "$tls"; mkdir -p "$tls"; chmod 700 "$tls"
  pass="$(openssl rand -hex 16)"; user_pass="$(openssl rand -hex 16)"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=interest-tracker local CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
  keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 7 \
    -dname "CN=127.0.0.1" -ext "SAN=IP:127.0.0.1,DNS:localhost" \
    -keystore "$tls/broker.p12" -storetype PKCS12 -storepass "$pass" -keypass "$pass" 2>/dev/null
  keytool -certreq -alias broker -keystore "$tls/broker.p12" -storepass "$pass" \
    -file "$tls/broker.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
  openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 7 -extfile "$tls/san.ext" -out "$tls/broker.pem" 2>/dev/null
  keytool -importcert -noprompt -alias ca -file "$tls/ca.pem" \
    -keystore "$tls/broker.p12" -storepass "$pass" >/dev/null 2>&1
  keytool -importcert -noprompt -alias broker -file "$tls/broker.pem" \
    -keystore "$tls/broker.p12" -storepass "$pass" >/dev/null 2>&1
  rm -f "$tls/broker.csr" "$tls/san.ext" "$tls/ca.key" "$tls/ca.srl"
  TLS_STORE_PASS="$pass"; SASL_USER=interest; SASL_PASS="$user_pass"
  (umask 077; printf '%s\n' KAFKA_SECURITY_PROTOCOL=SASL_SSL KAFKA_SASL_MECHANISM=PLAIN \
    "KAFKA_SASL_USERNAME=$SASL_USER" "KAFKA_SASL_PASSWORD=$SASL_PASS" \
    "KAFKA_SSL_CAFILE=$tls/ca.pem" >"$run_dir/client.env")
}

# The listener lines for the configured security; sets LISTENER_PROPS.
listener_config() {
  local bport="$1" cport="$2" iport
  if [ "$security" = plaintext ]; then
    LISTENER_PROPS="listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT"
    return
  fi
  make_tls
  iport="$(free_port)"
  while [ "$iport" = "$bport" ] || [ "$iport" = "$cport" ]; do iport="$(free_port)"; done
  # Clients use SASL_SSL (advertised last: client_port reads it); the broker talks to itself
  # on a loopback-only plaintext listener.
  LISTENER_PROPS="listeners=INTERNAL://127.0.0.1:$iport,SASL_SSL://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=INTERNAL://127.0.0.1:$iport,SASL_SSL://127.0.0.1:$bport
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER=\"$SASL_PASS\";
ssl.keystore.type=PKCS12
ssl.keystore.location=$run_dir/tls/broker.p12
ssl.keystore.password=$TLS_STORE_PASS
ssl.key.password=$TLS_STORE_PASS"
}

write_config() {
  local bport cport
  bport="$(free_port)"; cport="$(free_port)"
  while [ "$cport" = "$bport" ]; do cport="$(free_port)"; done
  listener_config "$bport" "$cport"
  cat >"$props" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
$LISTENER_PROPS
log.dirs=$run_dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
log.cleaner.backoff.ms=1000
EOF
}

format_storage() {
  [ -f "$run_dir/data/meta.properties" ] && return  # formatted before: keep data and cluster id
  local cluster_id
  cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  if ! java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$props" \
      >"$run_dir/format.log" 2>&1; then
    say "formatting the storage failed:"; tail -n 20 "$run_dir/format.log" >&2; exit 1
  fi
}

print_addr() { echo "KAFKA_BOOTSTRAP_SERVERS=$(cat "$addr_file")"; }

up() {
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    say "KAFKA_BOOTSTRAP_SERVERS is set: using that cluster, starting nothing"
    echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
    return
  fi
  command -v java >/dev/null || { say "Java 17+ is needed to run the local broker"; exit 1; }
  mkdir -p "$run_dir"
  if alive && port_open "$(client_port)"; then
    say "already running (pid $(cat "$pid_file"))"
    print_addr
    return
  fi
  if [ -f "$pid_file" ] && ! alive; then
    say "removing stale pid file (pid $(cat "$pid_file") is gone)"
    rm -f "$pid_file"
  fi
  resolve_jars
  local bport
  # Reuse the previous ports (and data) when they are still free; otherwise start afresh.
  if [ -f "$props" ] && [ -d "$run_dir/data" ] &&
      [ "$(cat "$run_dir/security" 2>/dev/null || echo plaintext)" != "$security" ]; then
    say "security changed to $security: new config, new data"
    rm -rf "$run_dir/data"; write_config
  elif [ -f "$props" ] && [ -d "$run_dir/data" ]; then
    bport="$(client_port)"
    if port_open "$bport"; then
      say "port $bport is taken by another process: new ports, new data"
      rm -rf "$run_dir/data"; write_config
    fi
  else
    rm -rf "$run_dir/data"; write_config
  fi
  format_storage
  echo "$security" >"$run_dir/security"
  bport="$(client_port)"
  echo "127.0.0.1:$bport" >"$addr_file"
  : >"$log_file"
  java_args
  # setsid: the broker outlives the shell that started it and ignores its terminal's Ctrl-C.
  setsid nohup "${JAVA_ARGS[@]}" kafka.Kafka "$props" >>"$log_file" 2>&1 </dev/null &
  echo $! >"$pid_file"
  say "starting broker (pid $(cat "$pid_file")) on 127.0.0.1:$bport"
  local waited=0
  until port_open "$bport" && grep -q "Kafka Server started" "$log_file"; do
    if ! alive; then
      say "the broker exited while starting; last log lines:"; tail -n 40 "$log_file" >&2
      rm -f "$pid_file"; exit 1
    fi
    if [ "$waited" -ge $((start_timeout * 4)) ]; then
      say "the broker did not accept connections within ${start_timeout}s; last log lines:"
      tail -n 40 "$log_file" >&2; down; exit 1
    fi
    sleep 0.25; waited=$((waited + 1))
  done
  say "ready after $((waited / 4)).$(( (waited % 4) * 25 ))s"
  print_addr
}

down() {
  if ! alive; then
    [ -f "$pid_file" ] && say "stale pid file removed" && rm -f "$pid_file"
    say "not running"
    return
  fi
  local pid; pid="$(cat "$pid_file")"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((stop_timeout * 4)) ]; then
      say "no clean stop within ${stop_timeout}s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.25; waited=$((waited + 1))
  done
  rm -f "$pid_file"
  say "stopped (pid $pid)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  logs) exec tail -n 100 -F "$log_file" ;;
  resolve) resolve_jars ;;
  status) if alive; then print_addr; else exit 1; fi ;;
  clean) down; rm -rf "$run_dir" ;;
  *) echo "usage: $0 up|down|logs|status|clean|resolve" >&2; exit 2 ;;
esac
