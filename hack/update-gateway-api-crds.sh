#!/usr/bin/env bash
# Copies the Gateway API CRDs that `tenantguard dev` and the tests install
# from the sigs.k8s.io/gateway-api module that go.mod requires.
set -euo pipefail
cd "$(dirname "$0")/.."
src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)/config/crd/standard"
for kind in gatewayclasses gateways listenersets httproutes grpcroutes tlsroutes tcproutes udproutes referencegrants; do
	install -m 0644 "$src/gateway.networking.k8s.io_${kind}.yaml" config/gatewayapi/
done
echo "copied from $src"
