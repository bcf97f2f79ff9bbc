#!/usr/bin/env bash
# Apache Kafka on loopback, from Maven Central jars: no tarball, no container.
#
#   scripts/kafka.sh install                                  fetch the jars (cached), print the libs dir
#   scripts/kafka.sh start --brokers N --dir DIR [--heap SIZE] [--owner-pid PID]
#                                                             a KRaft cluster of N (1 or 3) nodes
#   scripts/kafka.sh stop --dir DIR                           stop every node (SIGTERM, then SIGKILL)
#   scripts/kafka.sh kill --dir DIR --broker I                SIGKILL node I
#   scripts/kafka.sh start-broker --dir DIR --broker I        start node I again on its log dir
#   scripts/kafka.sh pause|resume --dir DIR --broker I        SIGSTOP / SIGCONT node I
#   scripts/kafka.sh wait --dir DIR [--timeout S]             wait until every live node answers metadata
#   scripts/kafka.sh tool NAME [ARGS...]                      one of Kafka's own tools (list below)
#
# Each node is its own JVM, combined broker and controller, numbered 0 to N-1, listening
# on 127.0.0.1 only:
#   PLAINTEXT      no authentication; its principal, ANONYMOUS, is a super user
#   SASL           SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
#   SASL_SSL       the same mechanisms over TLS
#   SSL            TLS, the server verified against DIR/tls/ca.pem, no client certificate
#   MTLS           TLS with a client certificate required (principal User:iotblast-client)
#   BROKER, CONTROLLER   inter-broker and KRaft traffic (PLAINTEXT)
# StandardAuthorizer enforces ACLs: SCRAM_USER (and the mTLS principal) may create,
# write and read any topic and group; NOACL_USER holds no ACL at all; ADMIN_USER is a
# super user. Passwords are random per cluster. Everything the cluster is, is in
# DIR/cluster.env as KEY=value lines (BOOTSTRAP, BOOTSTRAP_SASL, BOOTSTRAP_SSL, ...);
# logs are DIR/broker-I/server.log. docs/testing.md explains how the tests use it.
#
# --owner-pid PID makes the cluster a throwaway: once PID exits, the cluster stops and
# DIR is removed (the test harness passes its own pid).
# Tools: topics configs acls console-consumer console-producer producer-perf-test
#        get-offsets broker-api-versions metadata-quorum leader-election storage
set -euo pipefail

KAFKA_VERSION=4.4.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${TOOLS_CACHE:-$HOME/.cache/iotblast-tools}"
KAFKA_HOME="$TOOLS/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
# Ports of node I are BASE + 10*I + offset, in this order.
LISTENERS=(PLAINTEXT SASL SASL_SSL SSL MTLS BROKER CONTROLLER)

die() { echo "kafka.sh: $*" >&2; exit 1; }

# Fetches the broker and tools jars with Maven (scripts/kafka/pom.xml) into the cache,
# once; a stamp names the pom it came from, so a changed pom refetches.
install() {
  local stamp="$KAFKA_HOME/stamp" want
  want="$(sha256sum "$HERE/kafka/pom.xml" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Apache Kafka's jars"
  check_java
  echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS" >&2
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" -Dmaven.repo.local="$TOOLS/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" >&2 \
    || die "Maven could not fetch Apache Kafka $KAFKA_VERSION (see above)"
  echo "$want" > "$stamp"
}

check_java() {
  local v
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  [ -n "$v" ] || die "no java found (set JAVA_HOME); Apache Kafka $KAFKA_VERSION needs Java 17 or newer"
  [ "$v" -ge 17 ] || die "Java $v found; Apache Kafka $KAFKA_VERSION needs Java 17 or newer (set JAVA_HOME)"
}

# A Kafka tool's main class.
tool_class() {
  case "$1" in
    topics) echo org.apache.kafka.tools.TopicCommand ;;
    configs) echo org.apache.kafka.tools.ConfigCommand ;;
    acls) echo org.apache.kafka.tools.AclCommand ;;
    console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
    producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
    get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
    broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
    metadata-quorum) echo org.apache.kafka.tools.MetadataQuorumCommand ;;
    leader-election) echo org.apache.kafka.tools.LeaderElectionCommand ;;
    storage) echo kafka.tools.StorageTool ;;
    *) die "unknown tool '$1' (topics configs acls console-consumer console-producer producer-perf-test get-offsets broker-api-versions metadata-quorum leader-election storage)" ;;
  esac
}

# Runs a tool. Its log lines (WARN and above) go to stderr, so stdout is the tool's own.
# The perf test gets the JIT and heap Kafka's own script gives it; the others start fast.
tool() {
  [ $# -ge 1 ] || die "tool: which one?"
  local name="$1" class jvm
  shift
  class="$(tool_class "$name")"
  install
  tools_log4j
  if [ "$name" = producer-perf-test ]; then
    jvm=(-Xmx512M -XX:+UseG1GC -XX:MaxGCPauseMillis=20)
  else
    jvm=(-Xmx256M -XX:+UseSerialGC -XX:TieredStopAtLevel=1)
  fi
  exec "$JAVA" "${jvm[@]}" -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_HOME/tools-log4j2.properties" \
    -cp "$LIBS/*" "$class" "$@"
}

tools_log4j() {
  local f="$KAFKA_HOME/tools-log4j2.properties"
  [ -f "$f" ] && return 0
  cat > "$f" <<'EOF'
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
EOF
}

# --- cluster -----------------------------------------------------------------------

DIR="" BROKERS=1 BROKER="" HEAP="1g" OWNER="" TIMEOUT=120
parse() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) DIR="${2:?--dir needs a directory}"; shift 2 ;;
      --brokers) BROKERS="${2:?--brokers needs 1 or 3}"; shift 2 ;;
      --broker) BROKER="${2:?--broker needs a node number}"; shift 2 ;;
      --heap) HEAP="${2:?--heap needs a size such as 1g}"; shift 2 ;;
      --owner-pid) OWNER="${2:?--owner-pid needs a pid}"; shift 2 ;;
      --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift 2 ;;
      *) die "unknown argument '$1'" ;;
    esac
  done
  [ -n "$DIR" ] || die "--dir DIR is required"
  case "$BROKERS" in 1|3) ;; *) die "--brokers must be 1 or 3, got '$BROKERS'" ;; esac
  case "$TIMEOUT" in ''|*[!0-9]*) die "--timeout must be whole seconds, got '$TIMEOUT'" ;; esac
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
}

need_broker() {
  load_env
  case "$BROKER" in ''|*[!0-9]*) die "--broker I is required (0 to $((N - 1)))" ;; esac
  [ "$BROKER" -lt "$N" ] || die "--broker must be 0 to $((N - 1)), got $BROKER"
}

load_env() {
  [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR (no cluster.env): run 'scripts/kafka.sh start --dir $DIR' first"
  N="$(sed -n 's/^BROKERS=//p' "$DIR/cluster.env")"
  BASE="$(sed -n 's/^BASE_PORT=//p' "$DIR/cluster.env")"
}

port() { echo $((BASE + 10 * $1 + $2)); }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A block of 10*N free ports below the kernel's ephemeral range (32768 and up), so
# that no client connection can take one between our check and the broker's bind.
# The caller holds the port lock until the brokers listen.
pick_base() {
  local base p free i
  for _ in $(seq 1 200); do
    base=$((10000 + (RANDOM % 2200) * 10))
    free=1
    for i in $(seq 0 $((BROKERS - 1))); do
      for p in $(seq 0 $((${#LISTENERS[@]} - 1))); do
        if listening $((base + 10 * i + p)); then free=0; break 2; fi
      done
    done
    [ $free = 1 ] && { echo "$base"; return 0; }
  done
  die "found no free block of ports"
}

bootstrap() { # bootstrap LISTENER_INDEX
  local i out=""
  for i in $(seq 0 $((N - 1))); do out="$out${out:+,}127.0.0.1:$(port "$i" "$1")"; done
  echo "$out"
}

# A throwaway CA, one server certificate for every node (127.0.0.1 and localhost) and
# one client certificate for mTLS, as PEM files Kafka reads directly (no keytool).
make_tls() {
  local t="$DIR/tls"
  mkdir -p "$t"
  (
    cd "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=iotblast test CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    for who in server client; do
      local cn="localhost" ext="subjectAltName=IP:127.0.0.1,DNS:localhost"
      [ $who = client ] && { cn="iotblast-client"; ext="extendedKeyUsage=clientAuth"; }
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$who.key.pem" \
        -out "$who.csr" 2>/dev/null
      openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
        -extfile <(echo "$ext") -out "$who.pem" 2>/dev/null
      # Kafka's PEM key store wants a PKCS#8 key followed by the chain, in one file.
      openssl pkcs8 -topk8 -nocrypt -in "$who.key.pem" -out "$who.key"
      cat "$who.key" "$who.pem" > "$who.keystore.pem"
      rm -f "$who.csr" "$who.key.pem"
    done
    chmod 600 ./*.key ./*.keystore.pem
  )
}

secret() { openssl rand -hex 12; }

write_env() {
  umask 077
  local admin_pw iot_pw noacl_pw
  admin_pw="$(secret)" iot_pw="$(secret)" noacl_pw="$(secret)"
  cat > "$DIR/cluster.env" <<EOF
KAFKA_VERSION=$KAFKA_VERSION
BROKERS=$N
BASE_PORT=$BASE
BOOTSTRAP=$(bootstrap 0)
BOOTSTRAP_SASL=$(bootstrap 1)
BOOTSTRAP_SASL_SSL=$(bootstrap 2)
BOOTSTRAP_SSL=$(bootstrap 3)
BOOTSTRAP_MTLS=$(bootstrap 4)
CONTROLLERS=$(bootstrap 6)
CA_FILE=$DIR/tls/ca.pem
CLIENT_CERT=$DIR/tls/client.pem
CLIENT_KEY=$DIR/tls/client.key
CLIENT_PRINCIPAL=User:iotblast-client
ADMIN_USER=admin
ADMIN_PASSWORD=$admin_pw
SCRAM_USER=iotblast
SCRAM_PASSWORD=$iot_pw
NOACL_USER=nobody
NOACL_PASSWORD=$noacl_pw
EOF
}

env_get() { sed -n "s/^$1=//p" "$DIR/cluster.env"; }

node_config() { # node_config I
  local i="$1" d="$DIR/broker-$1" voters="" j l listeners="" advertised=""
  for j in $(seq 0 $((N - 1))); do voters="$voters${voters:+,}$j@127.0.0.1:$(port "$j" 6)"; done
  for l in $(seq 0 $((${#LISTENERS[@]} - 1))); do
    listeners="$listeners${listeners:+,}${LISTENERS[$l]}://127.0.0.1:$(port "$i" "$l")"
    [ "${LISTENERS[$l]}" = CONTROLLER ] || advertised="$advertised${advertised:+,}${LISTENERS[$l]}://127.0.0.1:$(port "$i" "$l")"
  done
  local rf=$N isr=$((N > 1 ? 2 : 1))
  local plain
  plain="org.apache.kafka.common.security.plain.PlainLoginModule required user_admin=\"$(env_get ADMIN_PASSWORD)\" user_iotblast=\"$(env_get SCRAM_PASSWORD)\" user_nobody=\"$(env_get NOACL_PASSWORD)\";"
  mkdir -p "$d/data"
  cat > "$d/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
inter.broker.listener.name=BROKER
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,MTLS:SSL,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=1
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl.plain.sasl.jaas.config=$plain
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain
listener.name.sasl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$DIR/tls/server.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$DIR/tls/ca.pem
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+).*\$/\$1/,DEFAULT
EOF
  chmod 600 "$d/server.properties"
  cat > "$d/log4j2.properties" <<EOF
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $d/server.log
appender.file.filePattern = $d/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

# Formats node I's log dir (once), adding the SCRAM credentials to the metadata log.
format_node() {
  local i="$1" scram=() u pw
  for u in ADMIN NOACL SCRAM; do
    pw="$(env_get "${u}_PASSWORD")"
    for m in SCRAM-SHA-256 SCRAM-SHA-512; do
      scram+=(--add-scram "$m=[name=$(env_get "${u}_USER"),password=$pw]")
    done
  done
  "$JAVA" -Xmx256M -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$KAFKA_HOME/tools-log4j2.properties" -cp "$LIBS/*" \
    kafka.tools.StorageTool format --ignore-formatted --cluster-id "$(env_get CLUSTER_ID)" \
    --config "$DIR/broker-$i/server.properties" "${scram[@]}" > "$DIR/broker-$i/format.log" 2>&1 \
    || { cat "$DIR/broker-$i/format.log" >&2; die "formatting node $i's log dir failed"; }
}

launch_node() {
  local i="$1" d="$DIR/broker-$1"
  if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
    die "node $i is already running (pid $(cat "$d/pid"))"
  fi
  # Kafka's own JVM settings (kafka-run-class.sh), with a small fixed heap.
  setsid "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$d/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$d/server.properties" > "$d/stdout.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$d/pid"
}

# Waits until node I listens on its PLAINTEXT port, or says why not.
await_listen() {
  local i="$1" t=0 pid
  pid="$(cat "$DIR/broker-$i/pid")"
  until listening "$(port "$i" 0)"; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$DIR/broker-$i/server.log" "$DIR/broker-$i/stdout.log" >&2 2>/dev/null; die "node $i exited during start-up (logs: $DIR/broker-$i)"; }
    [ $t -lt $((TIMEOUT * 5)) ] || die "node $i did not listen within ${TIMEOUT}s (logs: $DIR/broker-$i)"
    sleep 0.2
    t=$((t + 1))
  done
}

# Every live node answers a metadata request and appears in the cluster's metadata.
await_metadata() {
  local want=() i deadline=$((SECONDS + TIMEOUT)) out seen
  for i in $(seq 0 $((N - 1))); do
    if [ -f "$DIR/broker-$i/pid" ] && kill -0 "$(cat "$DIR/broker-$i/pid")" 2>/dev/null; then want+=("$i"); fi
  done
  while :; do
    out="$(timeout 60 "$0" tool broker-api-versions --bootstrap-server "$(bootstrap 0)" 2>/dev/null || true)"
    seen=0
    for i in "${want[@]}"; do
      grep -q "(id: $i rack" <<<"$out" && seen=$((seen + 1))
    done
    [ "$seen" -eq "${#want[@]}" ] && return 0
    [ $SECONDS -lt $deadline ] || die "not every node answered metadata within ${TIMEOUT}s (logs: $DIR/broker-*/server.log)"
    sleep 1
  done
}

grant_acls() {
  "$0" tool acls --bootstrap-server "$(env_get BOOTSTRAP)" --add \
    --allow-principal "User:$(env_get SCRAM_USER)" --allow-principal "$(env_get CLIENT_PRINCIPAL)" \
    --operation All --topic '*' --group '*' --cluster > "$DIR/acls.log" 2>&1 \
    || { cat "$DIR/acls.log" >&2; die "could not add the ACLs"; }
}

start() {
  install
  check_java
  tools_log4j
  [ ! -f "$DIR/cluster.env" ] || die "$DIR already holds a cluster: stop it and remove the directory, or use start-broker"
  mkdir -p "$TOOLS"
  exec 9> "$TOOLS/kafka-ports.lock"
  flock 9
  N=$BROKERS
  BASE="$(pick_base)"
  make_tls
  write_env
  echo "CLUSTER_ID=$("$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" >> "$DIR/cluster.env"
  local i pids=()
  for i in $(seq 0 $((N - 1))); do node_config "$i"; format_node "$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || exit 1; done
  for i in $(seq 0 $((N - 1))); do launch_node "$i"; done
  for i in $(seq 0 $((N - 1))); do await_listen "$i"; done
  flock -u 9
  await_metadata
  grant_acls
  if [ -n "$OWNER" ]; then
    # A throwaway cluster: stopped and removed when its owner exits, however it exits.
    setsid bash -c "while kill -0 $OWNER 2>/dev/null; do sleep 1; done; '$0' stop --dir '$DIR'; rm -rf '$DIR'" \
      > /dev/null 2>&1 < /dev/null &
  fi
  echo "kafka.sh: $N node(s) of Apache Kafka $KAFKA_VERSION ready; $DIR/cluster.env:" >&2
  grep -E '^(BOOTSTRAP|CA_FILE)' "$DIR/cluster.env" >&2
}

pid_of() { cat "$DIR/broker-$1/pid" 2>/dev/null || true; }

stop() {
  load_env
  local i pid pids=()
  for i in $(seq 0 $((N - 1))); do
    pid="$(pid_of "$i")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  # The last nodes of a quorum can wait on controllers that are gone: not for long.
  local t=0
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $t -lt 150 ]; do sleep 0.1; t=$((t + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for i in $(seq 0 $((N - 1))); do rm -f "$DIR/broker-$i/pid"; done
}

signal_node() { # signal_node SIGNAL
  need_broker
  local pid
  pid="$(pid_of "$BROKER")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || die "node $BROKER is not running"
  kill "-$1" "$pid"
  if [ "$1" = KILL ]; then
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$DIR/broker-$BROKER/pid"
  fi
}

start_broker() {
  need_broker
  launch_node "$BROKER"
  await_listen "$BROKER"
  await_metadata
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  install) install; echo "$LIBS" ;;
  tool) tool "$@" ;;
  start) parse "$@"; start ;;
  stop) parse "$@"; stop ;;
  kill) parse "$@"; signal_node KILL ;;
  pause) parse "$@"; signal_node STOP ;;
  resume) parse "$@"; signal_node CONT ;;
  start-broker) parse "$@"; start_broker ;;
  wait) parse "$@"; load_env; await_metadata ;;
  *) sed -n '2,28p' "$0" >&2; [ -z "$cmd" ] || die "unknown command '$cmd'"; exit 2 ;;
esac
