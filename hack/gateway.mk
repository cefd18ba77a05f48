# Gateway runtime targets (gatewayruntime/, cmd/gatekiln-gateway, bench/gateway).

.PHONY: bench-gateway gateway-routes
bench-gateway: ## gatekiln-gateway vs nginx: throughput, p50/p99, CPU/request, cold start, idle RSS (BENCH_SECONDS)
	bench/gateway/run.sh

gateway-routes: ## recompile the corpus route lists and routing golden files of gatewayruntime/gateway
	$(GO) test ./gatewayruntime/gateway/ -run TestGoldenRoutingTables -update
