#!/bin/bash
# preStop hook of the Envoy container: let in-flight requests finish before the kubelet sends SIGTERM,
# on which Envoy exits at once.
#
#   envoy-prestop.sh ADMIN_PORT DELAY_SECONDS DRAIN_SECONDS
#
# 1. Keep serving for DELAY_SECONDS while the terminating pod is removed from Service endpoints and load
#    balancers (new requests still arrive meanwhile, and tollgate keeps serving them: its own preStop
#    sleeps as long).
# 2. POST /drain_listeners?graceful&skip_exit on the admin: HTTP/1.1 responses get "Connection: close",
#    HTTP/2 connections a GOAWAY, and the listeners close after --drain-time-s. skip_exit: Envoy keeps
#    running until SIGTERM, so the requests still in flight are not cut when the drain period ends.
# 3. Poll http.tollgate.downstream_rq_active until it is 0, for at most DRAIN_SECONDS + 5 (tollgate stops
#    its remaining streams at its --drain-timeout, which ends those requests too).
#
# The Envoy image has bash but no curl, so the admin is spoken to over bash's /dev/tcp.
set -u
port=${1:?admin port}
delay=${2:?delay seconds}
drain=${3:?drain seconds}

# admin METHOD PATH: print the response body of an admin request.
admin() {
  local line body=0
  exec 3<>"/dev/tcp/127.0.0.1/${port}" || return 1
  printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
  while IFS= read -r -t 5 line <&3 || [ -n "$line" ]; do
    line=${line%$'\r'}
    if [ "$body" = 1 ]; then
      printf '%s\n' "$line"
    elif [ -z "$line" ]; then
      body=1
    fi
  done
  exec 3<&- 3>&-
}

# active: the number of requests in flight on the gateway listener ("" if unknown).
active() {
  local line
  while IFS= read -r line; do
    case $line in
      "http.tollgate.downstream_rq_active: "*) printf '%s' "${line#*: }"; return ;;
    esac
  done < <(admin GET '/stats?filter=downstream_rq_active')
}

log() { printf 'envoy-prestop: %s\n' "$*" > /proc/1/fd/1 2>/dev/null || printf 'envoy-prestop: %s\n' "$*"; }

log "terminating: serving ${delay}s more, then draining for up to ${drain}s"
sleep "$delay"
admin POST '/drain_listeners?graceful&skip_exit' > /dev/null || log "drain_listeners failed"
deadline=$((SECONDS + drain + 5))
while [ "$SECONDS" -lt "$deadline" ]; do
  n=$(active)
  if [ "$n" = 0 ]; then
    log "no requests in flight"
    exit 0
  fi
  sleep 1
done
log "deadline reached with ${n:-unknown} request(s) in flight"
exit 0
