#!/bin/sh
# The default user from the environment (applied when the node's database is first made), reachable
# from other containers; then the broker in the foreground.
set -eu
: "${RABBITMQ_DEFAULT_USER:?RABBITMQ_DEFAULT_USER must be set}"
: "${RABBITMQ_DEFAULT_PASS:?RABBITMQ_DEFAULT_PASS must be set}"
export RABBITMQ_CONFIG_FILE=/var/lib/rabbitmq/rabbitmq.conf
export RABBITMQ_LOGS=-
cat >"$RABBITMQ_CONFIG_FILE" <<CONF
default_user = $RABBITMQ_DEFAULT_USER
default_pass = $RABBITMQ_DEFAULT_PASS
loopback_users = none
listeners.tcp.default = 5672
CONF
exec rabbitmq-server
