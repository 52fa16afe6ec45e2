#!/bin/sh
# Builds svcdns and serves the tutorial manifests in examples/ on 127.0.0.1:5353 until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target svcdns
cat <<MSG

svcdns is starting on 127.0.0.1:5353 (UDP and TCP) with the manifests in examples/.
In another terminal:
  dig @127.0.0.1 -p 5353 echo.default.svc.local        # the Service's ClusterIP
  dig @127.0.0.1 -p 5353 gihyo.default.svc.local       # ExternalName: CNAME to gihyo.jp
  dig @127.0.0.1 -p 5353 echo +nosearch                # short name, through the search path
Stop it with Ctrl-C.

MSG
exec ./build/svcdns --manifests examples/ --listen 127.0.0.1:5353 --log-queries "$@"
