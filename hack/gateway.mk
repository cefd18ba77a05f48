# Gateway runtime targets (gatewayruntime/, cmd/gatekiln-gateway, bench/gateway).

.PHONY: bench-gateway gateway-routes
bench-gateway: ## gatekiln-gateway vs nginx: throughput, p50/p99, CPU/request, cold start, idle RSS (BENCH_SECONDS; GATEWAY_B=<binary> adds a candidate, side by side)
	bench/gateway/run.sh $(if $(GATEWAY_B),-gateway-b $(abspath $(GATEWAY_B)))

gateway-routes: ## recompile the corpus route lists and routing golden files of gatewayruntime/gateway
	$(GO) test ./gatewayruntime/gateway/ -run TestGoldenRoutingTables -update
