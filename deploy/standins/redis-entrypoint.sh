#!/bin/sh
# Stand-in for the official redis image's entry point: redis-server runs as the redis user with protected mode off
# (the official image builds Redis with it off: the container network is the boundary, and a compose service that
# reaches Redis by name must not be refused as a remote client).
set -eu
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
    if [ "$(id -u)" = 0 ]; then
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
